package csvcell

import "testing"

func TestText(t *testing.T) {
	tests := map[string]string{
		"":                     "",
		"/pricing":             "/pricing",
		"plan":                 "plan",
		"=HYPERLINK(\"x\")":    "'=HYPERLINK(\"x\")",
		"+1":                   "'+1",
		"-1+1":                 "'-1+1",
		"@SUM(A1)":             "'@SUM(A1)",
		"\tx":                  "'\tx",
		"\rx":                  "'\rx",
		" =x":                  " =x", // not at the start: shown as text already
		"'=x":                  "'=x", // already text
		"\u00a0=x":             "\u00a0=x",
		"=":                    "'=",
		"https://a.example/=b": "https://a.example/=b",
	}
	for in, want := range tests {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}
