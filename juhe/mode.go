package juhe

import (
	"crypto/aes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Mode is how the mobile number is sent to the provider.
type Mode string

// The six modes of the provider's document. ModePlain uses /twoSellTel/query;
// every other mode uses /twoSellTel/queryEncry, where the provider tells the
// mode from the shape of the mobile parameter.
const (
	ModePlain     Mode = "plain"      // the 11 digits
	ModeMD5       Mode = "md5"        // lowercase hex MD5 of the 11 digits
	ModeSHA256    Mode = "sha256"     // lowercase hex SHA-256 of the 11 digits
	ModeAES       Mode = "aes"        // base64(AES-128-ECB-PKCS5(digits))
	ModeMD5AES    Mode = "md5+aes"    // base64(AES-128-ECB-PKCS5(md5 hex))
	ModeSHA256AES Mode = "sha256+aes" // base64(AES-128-ECB-PKCS5(sha256 hex))
)

// Modes lists every mode, in the order of the provider's document.
var Modes = []Mode{ModePlain, ModeMD5, ModeSHA256, ModeAES, ModeMD5AES, ModeSHA256AES}

// ParseMode returns the Mode named s, or an error that lists the valid names.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown mode %q; valid modes: %s", s, strings.Join(names, ", "))
}

// Encrypted reports whether the mode uses the /twoSellTel/queryEncry endpoint.
func (m Mode) Encrypted() bool { return m != ModePlain }

// UsesAES reports whether the mode needs the account's openid.
func (m Mode) UsesAES() bool { return m == ModeAES || m == ModeMD5AES || m == ModeSHA256AES }

// Path is the endpoint path the mode is sent to.
func (m Mode) Path() string {
	if m.Encrypted() {
		return PathQueryEncry
	}
	return PathQuery
}

// The provider's endpoint paths.
const (
	PathQuery      = "/twoSellTel/query"
	PathQueryEncry = "/twoSellTel/queryEncry"
)

// AESKey derives the AES-128 key from the account's openid, as the provider's
// document says: the first 16 characters of the lowercase hex MD5 of the
// openid, used as the key bytes.
func AESKey(openid string) []byte {
	sum := md5.Sum([]byte(openid))
	return []byte(hex.EncodeToString(sum[:])[:16])
}

// MD5Hex returns the lowercase hex MD5 digest of s.
func MD5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// SHA256Hex returns the lowercase hex SHA-256 digest of s.
func SHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// EncodeMobile returns the value of the mobile parameter for mode: the digits
// themselves, their digest, or the standard base64 of their AES encryption
// under aesKey (see AESKey). aesKey is used only by the AES modes. The result
// is not URL-encoded; url.Values does that when the request is built.
func EncodeMobile(mode Mode, mobile string, aesKey []byte) (string, error) {
	switch mode {
	case ModePlain:
		return mobile, nil
	case ModeMD5:
		return MD5Hex(mobile), nil
	case ModeSHA256:
		return SHA256Hex(mobile), nil
	case ModeAES:
		return EncryptAES(aesKey, mobile)
	case ModeMD5AES:
		return EncryptAES(aesKey, MD5Hex(mobile))
	case ModeSHA256AES:
		return EncryptAES(aesKey, SHA256Hex(mobile))
	}
	return "", fmt.Errorf("unknown mode %q", mode)
}

// EncryptAES encrypts plaintext with AES/ECB/PKCS5Padding under key and
// returns the standard base64 of the ciphertext (not lower-cased).
func EncryptAES(key []byte, plaintext string) (string, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", fmt.Errorf("aes key: %w", err)
	}
	bs := block.BlockSize()
	pad := bs - len(plaintext)%bs
	buf := make([]byte, len(plaintext)+pad)
	copy(buf, plaintext)
	for i := len(plaintext); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	// ECB: each block on its own. crypto/cipher has no ECB mode on purpose;
	// the provider's document requires it.
	for i := 0; i < len(buf); i += bs {
		block.Encrypt(buf[i:i+bs], buf[i:i+bs])
	}
	return base64.StdEncoding.EncodeToString(buf), nil
}

// DecryptAES reverses EncryptAES: standard base64, AES/ECB, PKCS5 padding.
// The simulator uses it to read what a client sent.
func DecryptAES(key []byte, b64 string) (string, error) {
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("not standard base64: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", fmt.Errorf("aes key: %w", err)
	}
	bs := block.BlockSize()
	if len(ct) == 0 || len(ct)%bs != 0 {
		return "", fmt.Errorf("ciphertext of %d bytes is not a whole number of %d-byte blocks", len(ct), bs)
	}
	pt := make([]byte, len(ct))
	for i := 0; i < len(ct); i += bs {
		block.Decrypt(pt[i:i+bs], ct[i:i+bs])
	}
	pad := int(pt[len(pt)-1])
	if pad == 0 || pad > bs || pad > len(pt) {
		return "", fmt.Errorf("bad PKCS5 padding")
	}
	for _, b := range pt[len(pt)-pad:] {
		if int(b) != pad {
			return "", fmt.Errorf("bad PKCS5 padding")
		}
	}
	return string(pt[:len(pt)-pad]), nil
}

// ValidMobile reports whether s is a mainland mobile number as the provider
// accepts it: 11 ASCII digits matching ^1[3-9]\d{9}$. Hand-written rather
// than a regexp: it runs on every query.
func ValidMobile(s string) bool {
	if len(s) != 11 || s[0] != '1' || s[1] < '3' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
