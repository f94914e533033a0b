package config

import (
	"os"
	"strings"
	"testing"
)

func TestSubjectKey(t *testing.T) {
	key := strings.Repeat("k", MinSigningKeyLen)
	getenv = func(k string) string {
		if k == "GLIMPSE_TEST_SUBJECT_KEY" {
			return key
		}
		return ""
	}
	t.Cleanup(func() { getenv = os.Getenv })
	tests := []struct {
		name, privacy, want string // want: "" for valid, else part of the error
	}{
		{"consented with key", "{mode: consented, subject_key: " + key + "}", ""},
		{"consented with env", "{mode: consented, subject_key_env: GLIMPSE_TEST_SUBJECT_KEY}", ""},
		{"consented without key", "{mode: consented}", "sites[0].privacy.subject_key: mode consented needs a key"},
		{"short key", "{mode: consented, subject_key: short}", "5 bytes is too short"},
		{"empty env", "{mode: consented, subject_key_env: NOPE}", "subject_key_env: environment variable NOPE"},
		{"both", "{mode: consented, subject_key: " + key + ", subject_key_env: GLIMPSE_TEST_SUBJECT_KEY}", "not both"},
		{"key in strict mode", "{subject_key: " + key + "}", "only mode consented"},
		{"strict without key", "{mode: strict}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("s.yaml", []byte("sites:\n  - domain: example.com\n    privacy: "+tt.privacy+"\n"))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q", err, tt.want)
			case tt.want == "" && f.Sites[0].Privacy.Mode == ModeConsented && f.Sites[0].Privacy.SubjectKey != key:
				t.Fatalf("key not resolved: %q", f.Sites[0].Privacy.SubjectKey)
			}
		})
	}
}
