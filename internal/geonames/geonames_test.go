package geonames

import (
	"os"
	"testing"
)

func TestNames(t *testing.T) {
	if _, err := os.Stat(Dir); err != nil {
		t.Skipf("no iso-codes data in %s (apt-get install iso-codes)", Dir)
	}
	find := func(tb Table, code string) string {
		for i, c := range tb.Codes {
			if c == code {
				return tb.Names[i]
			}
		}
		return ""
	}
	for _, tt := range []struct {
		tb         Table
		code, want string
	}{
		{Countries(), "DE", "Germany"}, {Countries(), "KR", "South Korea"}, {Countries(), "US", "United States"},
		{Regions(), "DE-BE", "Berlin"}, {Regions(), "US-CA", "California"},
	} {
		if got := find(tt.tb, tt.code); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.code, got, tt.want)
		}
	}
	if n := len(Countries().Codes); n < 240 {
		t.Errorf("%d countries", n)
	}
}
