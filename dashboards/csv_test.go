package dashboards

import (
	"encoding/csv"
	"net/url"
	"strings"
	"testing"
)

// TestCSVHeaderNeutralised: a property key is text a visitor chose (the
// beacon sends any key), and the CSV's first header cell is that key: a
// key a spreadsheet would run as a formula gets the same apostrophe as a
// value.
func TestCSVHeaderNeutralised(t *testing.T) {
	f := newFixtureFor(t, testEmail, onClickHouse(t))
	for _, key := range []string{`=HYPERLINK("https://evil.example","x")`, "+1", "-1+1", "@SUM(1)", "\tx", "\rx"} {
		q := url.Values{"endpoint": {"breakdown"}, "site_id": {"example.com"}, "period": {"30d"}, "auth": {testToken},
			"property": {"event:props:" + key}, "metrics": {"visitors"}}
		r := f.do("GET", PathCSV+"?"+q.Encode(), "")
		recs, err := csv.NewReader(strings.NewReader(string(r.Body()))).ReadAll()
		if r.StatusCode() != 200 || err != nil || len(recs) == 0 {
			t.Fatalf("key %q: %d %v\n%s", key, r.StatusCode(), err, r.Body())
		}
		if got := recs[0][0]; got != "'"+key {
			t.Errorf("key %q: header cell %q, want %q", key, got, "'"+key)
		}
	}
}
