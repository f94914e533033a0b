package grafana

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// rawQueries returns every panel and variable query of the dashboard in
// file.
func rawQueries(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", file, err)
	}
	var qs []string
	for _, v := range d.Templating.List {
		if s, ok := v.Query.(string); ok && v.Type == "query" {
			qs = append(qs, s)
		}
	}
	for _, p := range panels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, tg.RawSQL)
		}
	}
	return qs
}

// vocabularyLiteral finds a literal compared with a column that has a
// fixed vocabulary: channel = 'Organic Search', device IN ('Mobile', ...).
var vocabularyLiteral = regexp.MustCompile(`\b(\w+)\s*(?:=|!=|IN\s*\()\s*'([^']*)'`)

// TestQueriesUseTheDimensionsTable: the dashboards read ClickHouse
// directly, so they must report a dimension as the engine does: a
// dimension whose value is an expression (an empty source reported as
// "Direct / None") is read with that expression, and a literal compared
// with a column of a fixed vocabulary is one of its values.
func TestQueriesUseTheDimensionsTable(t *testing.T) {
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	vocab := map[string][]string{}
	for _, d := range model.Dimensions {
		if d.Vocabulary != nil {
			vocab[d.Column] = d.Vocabulary
		}
	}
	checked := 0
	for _, f := range files {
		for _, sql := range rawQueries(t, f) {
			for _, d := range model.Dimensions {
				if d.Empty != "" && strings.Contains(sql, d.Column) {
					checked++
					if !strings.Contains(sql, d.SQL()) {
						t.Errorf("%s: a query reads %s without its expression %s:\n%s", f, d.Column, d.SQL(), sql)
					}
				}
			}
			for _, m := range vocabularyLiteral.FindAllStringSubmatch(sql, -1) {
				if values, ok := vocab[m[1]]; ok {
					checked++
					found := false
					for _, v := range values {
						found = found || v == m[2]
					}
					if !found {
						t.Errorf("%s: %s compared with %q, which is not in its vocabulary %v", f, m[1], m[2], values)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no query reads a dimension with an expression or a vocabulary: the check checked nothing")
	}
}
