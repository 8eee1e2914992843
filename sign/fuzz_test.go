package sign

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzVerifyClearsigned: no input makes VerifyClearsigned, StripClearsigned or VerifyDetached
// panic; every error names the file and wraps one of the error classes; whatever verifies also
// strips to the same body. The seed corpus is in testdata/fuzz/FuzzVerifyClearsigned.
func FuzzVerifyClearsigned(f *testing.F) {
	s, kr := testSigner(f), testKeyring(f)
	good := clearSign(f, s, []byte("{\n \"format\": \"index:1.0\"\n}\n"))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(clearSign(f, s, []byte("-a\n- b\n\n")))
	f.Add(append(bytes.Clone(good), good...))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nx\n-----BEGIN PGP SIGNATURE-----\n\n=AAAA\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.sjson"
		classed := func(err error) {
			if !strings.HasPrefix(err.Error(), name+": ") {
				t.Errorf("error %q does not name the file", err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Errorf("error %q wraps no error class", err)
		}
		body, err := VerifyClearsigned(name, data, kr)
		if err != nil {
			classed(err)
		}
		stripped, serr := StripClearsigned(name, data)
		if serr != nil {
			classed(serr)
		}
		if err == nil && (serr != nil || !bytes.Equal(body, stripped)) {
			t.Errorf("verified body %q, stripped %q, %v", body, stripped, serr)
		}
		if err == nil && !IsClearsigned(data) {
			t.Errorf("verified a message IsClearsigned rejects")
		}
		if err := VerifyDetached(name, body, data, kr); err != nil {
			classed(err)
		}
	})
}
