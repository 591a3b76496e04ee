package config

import (
	"io/fs"
	"os"
	"runtime"
)

// ExposedSecretFile is a file of a secret that users other than its owner
// may read or change.
type ExposedSecretFile struct {
	Key  string      // the setting that names it, such as juhe.key_file
	Path string      // as set
	Mode fs.FileMode // its permission bits
}

// exposedBits are the permission bits that expose a secret's file: any
// access of other users (read: the secret; write: a secret of their own),
// and the group's write.
const exposedBits fs.FileMode = 0o026

// ExposedSecretFiles returns the secret files set (juhe.key_file,
// juhe.openid_file, kafka.sasl.password_file, kafka.sasl.token_file,
// cache.secret_file and the TLS client key, kafka.tls.key_file) that users
// other than their owner may read, or the group or others may change, as
// their permission bits are now. A file that cannot be read is left out:
// loading the settings says so. Nothing is returned on Windows, whose files
// have no such bits. (Kubernetes mounts a secret's files at 0644 unless its
// volume's defaultMode says otherwise.)
func (c *Config) ExposedSecretFiles() []ExposedSecretFile {
	if runtime.GOOS == "windows" {
		return nil
	}
	files := []struct{ key, path string }{
		{"juhe.key_file", c.Juhe.KeyFile},
		{"juhe.openid_file", c.Juhe.OpenIDFile},
		{"kafka.sasl.password_file", c.Kafka.SASL.PasswordFile},
		{"kafka.sasl.token_file", c.Kafka.SASL.TokenFile},
		{"kafka.tls.key_file", c.Kafka.TLS.KeyFile},
		{"cache.secret_file", c.Cache.SecretFile},
	}
	var out []ExposedSecretFile
	for _, f := range files {
		if f.path == "" {
			continue
		}
		fi, err := os.Stat(f.path) // a mounted secret's path is a link: its target's bits
		if err != nil {
			continue
		}
		if mode := fi.Mode().Perm(); mode&exposedBits != 0 {
			out = append(out, ExposedSecretFile{Key: f.key, Path: f.path, Mode: mode})
		}
	}
	return out
}
