package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// KeyID returns the ID of a public key: the first 8 bytes of the SHA-256 of
// its 32 bytes, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKey writes a new key pair: privPath (PKCS #8 PEM, mode 0600,
// never overwritten) and pubPath (PKIX PEM). It returns the key ID.
func GenerateKey(privPath, pubPath string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(privPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(privPath)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(privPath)
		return "", err
	}
	if err := writeFileAtomic(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644); err != nil {
		return "", err
	}
	return KeyID(pub), nil
}

// ReadPrivateKey reads an ed25519 private key in PKCS #8 PEM.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not an ed25519 key", path, k)
	}
	return priv, nil
}

// ReadPublicKey reads an ed25519 public key in PKIX PEM.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not an ed25519 key", path, k)
	}
	return pub, nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("%s: no PEM block of type %q", path, typ)
	}
	return blk.Bytes, nil
}

// Verifier checks manifests against a set of trusted public keys.
type Verifier struct {
	keys map[string]ed25519.PublicKey
}

// NewVerifier returns a Verifier that trusts keys.
func NewVerifier(keys ...ed25519.PublicKey) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("manifest: no trusted key")
	}
	v := &Verifier{keys: make(map[string]ed25519.PublicKey, len(keys))}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("manifest: not an ed25519 public key")
		}
		v.keys[KeyID(k)] = k
	}
	return v, nil
}

// LoadVerifier reads the public keys at paths.
func LoadVerifier(paths ...string) (*Verifier, error) {
	var keys []ed25519.PublicKey
	for _, p := range paths {
		k, err := ReadPublicKey(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return NewVerifier(keys...)
}

// Verify parses data, checks its signature against the trusted keys and
// that it describes path. The error wraps ErrMalformed, ErrUntrusted,
// ErrSignature or ErrMismatch.
func (v *Verifier) Verify(data []byte, path string) (*Manifest, error) {
	m, err := Parse(data)
	if err != nil {
		return nil, err
	}
	k, ok := v.keys[m.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: key %s", ErrUntrusted, m.KeyID)
	}
	if !ed25519.Verify(k, m.body(nil), m.Signature) {
		return nil, fmt.Errorf("%w: %s (key %s)", ErrSignature, m.Path, m.KeyID)
	}
	if m.Path != path {
		return nil, fmt.Errorf("%w: manifest is for %q, not %q", ErrMismatch, m.Path, path)
	}
	return m, nil
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so that a reader never sees half a file.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// SignFile builds and signs the manifest of the file at path, served at
// urlPath, and writes it next to the file (path + Suffix), atomically.
func SignFile(path, urlPath string, segmentSize int64, key ed25519.PrivateKey) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("manifest: %s is not a regular file", path)
	}
	m, err := Build(f, urlPath, fi.Size(), segmentSize)
	if err != nil {
		return nil, err
	}
	enc, err := m.Sign(key)
	if err != nil {
		return nil, err
	}
	return m, writeFileAtomic(path+Suffix, enc, 0o644)
}
