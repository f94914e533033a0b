// Package grafana holds Glimpse's Grafana dashboards (JSON for the
// official ClickHouse data source plugin) and the test that runs their
// queries against the real schema.
package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

const pluginType = "grafana-clickhouse-datasource"

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		Type string `json:"type"`
	} `json:"datasource"`
	Targets []struct {
		RefID      string `json:"refId"`
		EditorType string `json:"editorType"`
		RawSQL     string `json:"rawSql"`
		Format     *int   `json:"format"`
		Datasource struct {
			Type string `json:"type"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // rows
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// The test window: the seeded 30 days.
var from, to = time.Now().UTC().AddDate(0, 0, -31).Unix(), time.Now().UTC().Add(24 * time.Hour).Unix()

var (
	timeFilter     = regexp.MustCompile(`\$__timeFilter\(\s*([^)]+?)\s*\)`)
	dateFilter     = regexp.MustCompile(`\$__dateFilter\(\s*([^)]+?)\s*\)`)
	conditionalAll = regexp.MustCompile(`\$__conditionalAll\((.*?),\s*\$\{?(\w+)\}?\)`)
	variable       = regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\$(\w+)`)
)

// expand does what the plugin and Grafana do to a query before sending it:
// the plugin's macros, then the template variables (values as a user
// would pick them; a multi-value variable with two values).
func expand(sql string, vars map[string][]string, all map[string]bool) string {
	sql = timeFilter.ReplaceAllString(sql, fmt.Sprintf("$1 >= toDateTime(%d) AND $1 <= toDateTime(%d)", from, to))
	sql = dateFilter.ReplaceAllString(sql, fmt.Sprintf("$1 >= toDate(toDateTime(%d)) AND $1 <= toDate(toDateTime(%d))", from, to))
	sql = conditionalAll.ReplaceAllStringFunc(sql, func(m string) string {
		g := conditionalAll.FindStringSubmatch(m)
		if all[g[2]] {
			return "1=1"
		}
		return g[1]
	})
	r := strings.NewReplacer(
		"$__fromTime", fmt.Sprintf("toDateTime(%d)", from),
		"$__toTime", fmt.Sprintf("toDateTime(%d)", to),
		"$__interval_s", "3600",
		"$__interval_ms", "3600000",
	)
	sql = r.Replace(sql)
	return variable.ReplaceAllStringFunc(sql, func(m string) string {
		g := variable.FindStringSubmatch(m)
		name, format := g[1], g[2]
		if name == "" {
			name = g[3]
		}
		vals, ok := vars[name]
		if !ok {
			return m // left for the check below
		}
		switch format {
		case "singlequote":
			q := make([]string, len(vals))
			for i, v := range vals {
				q[i] = "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
			}
			return strings.Join(q, ",")
		case "", "raw":
			return strings.Join(vals, ",")
		}
		return m
	})
}

func panels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, panels(p.Panels)...)
	}
	return out
}

func seedData(t *testing.T, db *chtest.DB, site string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 100000})
	if _, err := seed.Generate(ctx, w, seed.Options{Site: site, Events: 3000, Days: 30, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	// Email events of two campaigns: human and machine opens, clicks.
	at := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	for i := 0; i < 60; i++ {
		e := w.NewEvent()
		e.SiteID, e.TS = site, at
		e.EventID[0], e.EventID[1], e.EventID[6], e.EventID[8] = byte(i), 0xe7, 0x40, 0x80
		e.VisitorID = uint64(5e12) + uint64(i%20)
		e.Type = model.TypeEmailOpen
		e.EmailVerdict = []string{"human", "machine", "human"}[i%3]
		if i%4 == 0 {
			e.Type = model.TypeEmailClick
			e.TargetURL = append(e.TargetURL, "example.com/launch"...)
		}
		e.EmailCampaign = append(e.EmailCampaign, []string{"spring-launch", "weekly-42"}[i%2]...)
		if err := w.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
	if lost, err := w.Close(ctx); err != nil || lost > 0 {
		t.Fatalf("seed: %d lost, %v", lost, err)
	}
}

// TestPanelQueriesRunOnTheSchema loads each dashboard, expands every
// panel and variable query as the plugin would, and runs it against the
// migrated schema: any error fails.
func TestPanelQueriesRunOnTheSchema(t *testing.T) {
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	db := chtest.Migrated(t)
	const site = "grafana.test"
	seedData(t, db, site)
	vars := map[string][]string{"site": {site}, "k": {"5"}, "campaign": {"spring-launch", "weekly-42"}}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var d dashboard
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("%s is not valid JSON: %v", f, err)
			}
			if d.UID == "" || d.Title == "" {
				t.Errorf("%s: missing uid or title", f)
			}
			type query struct{ name, sql string }
			var qs []query
			for _, v := range d.Templating.List {
				if s, ok := v.Query.(string); ok && v.Type == "query" {
					qs = append(qs, query{"variable " + v.Name, s})
				}
			}
			n := 0
			for _, p := range panels(d.Panels) {
				if p.Type == "row" {
					continue
				}
				n++
				if p.Datasource.Type != pluginType || len(p.Targets) == 0 {
					t.Errorf("panel %q: want targets on the %s data source", p.Title, pluginType)
				}
				for _, tg := range p.Targets {
					if tg.Datasource.Type != pluginType || tg.EditorType != "sql" || tg.Format == nil || strings.TrimSpace(tg.RawSQL) == "" {
						t.Errorf("panel %q target %s: want a raw SQL query with a format for %s", p.Title, tg.RefID, pluginType)
					}
					qs = append(qs, query{fmt.Sprintf("panel %q", p.Title), tg.RawSQL})
				}
			}
			if n < 5 {
				t.Errorf("%s has only %d panels", f, n)
			}
			for _, all := range []bool{false, true} {
				for _, q := range qs {
					sql := expand(q.sql, vars, map[string]bool{"campaign": all})
					if strings.Contains(sql, "$") {
						t.Errorf("%s: unexpanded macro or variable in\n%s", q.name, sql)
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					rows, err := db.Conn.Query(ctx, sql)
					if err != nil {
						cancel()
						t.Errorf("%s fails on ClickHouse: %v\n%s", q.name, err, sql)
						continue
					}
					got := 0
					for rows.Next() {
						got++
					}
					if err := rows.Err(); err != nil {
						t.Errorf("%s: %v", q.name, err)
					}
					rows.Close()
					cancel()
					if got == 0 {
						t.Errorf("%s returns no rows on the seeded data:\n%s", q.name, sql)
					}
				}
			}
		})
	}
}
