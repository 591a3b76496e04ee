package juhesim

import (
	"strings"
	"testing"

	"github.com/twosell/twosell/juhe"
)

// FuzzDecodeMobile holds the simulator's mode inference to the provider's
// rules on any value of queryEncry's mobile parameter: an 11-digit mobile
// with the mode that explains the value, 232703 for a digest the simulator
// does not know, or 232702 for a value no mode explains — plaintext
// included — and never a panic. What it accepts, the client's own encoding
// of the answer is accepted the same way.
func FuzzDecodeMobile(f *testing.F) {
	const openid = "fuzz-openid"
	key := juhe.AESKey(openid)
	known := Population(20)
	for _, m := range known[:3] {
		for _, mode := range juhe.Modes {
			v, err := juhe.EncodeMobile(mode, m, key)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(v)
		}
	}
	other, _ := juhe.EncryptAES(juhe.AESKey("another-openid"), known[0])
	notMobile, _ := juhe.EncryptAES(key, "23312345678")
	for _, s := range []string{
		"", "17312345678", "1731234567", strings.ToUpper(juhe.MD5Hex(known[0])), juhe.MD5Hex("17300000000"),
		juhe.SHA256Hex("17300000000"), other, notMobile, "AAAAAAAAAAAAAAAAAAAAAA==", "====", "not base64!",
		strings.Repeat("a", 32), strings.Repeat("0", 64), "+86 173 1234 5678",
	} {
		f.Add(s)
	}

	s, err := New(Config{Keys: []string{"k"}, OpenID: openid, Population: len(known)})
	if err != nil {
		f.Fatal(err)
	}
	digest := map[juhe.Mode]bool{juhe.ModeMD5: true, juhe.ModeSHA256: true, juhe.ModeMD5AES: true, juhe.ModeSHA256AES: true}
	f.Fuzz(func(t *testing.T, v string) {
		mobile, mode, code := s.decodeMobile(v)
		switch code {
		case codeOK:
			if !juhe.ValidMobile(mobile) || mode == "" || mode == juhe.ModePlain {
				t.Fatalf("decodeMobile(%q) = %q, %q: not a mobile in an encrypted mode", v, mobile, mode)
			}
			// The client's encoding of the answer reads back the same.
			enc, err := juhe.EncodeMobile(mode, mobile, key)
			if err != nil {
				t.Fatal(err)
			}
			if m2, mode2, code2 := s.decodeMobile(enc); m2 != mobile || mode2 != mode || code2 != codeOK {
				t.Fatalf("%q read as %s %s, but its encoding %q reads as %q %s %d", v, mobile, mode, enc, m2, mode2, code2)
			}
			if !mode.UsesAES() && enc != v {
				t.Fatalf("digest %q read as %s in mode %s, whose digest is %q", v, mobile, mode, enc)
			}
		case codeNoRecord:
			if mobile != "" || !digest[mode] {
				t.Fatalf("decodeMobile(%q) = %q, %q: no record outside a digest mode", v, mobile, mode)
			}
		case codeBadParam:
			if mobile != "" || mode != "" {
				t.Fatalf("decodeMobile(%q) = %q, %q with 232702", v, mobile, mode)
			}
		default:
			t.Fatalf("decodeMobile(%q): code %d", v, code)
		}
		if juhe.ValidMobile(v) && code != codeBadParam {
			t.Fatalf("plaintext %q accepted on queryEncry", v)
		}
	})
}
