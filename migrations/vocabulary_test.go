package migrations_test

import (
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// TestVocabularyRewrite: rows stored before 0012 in the old spelling
// ("search", "desktop", "laptop") read, once it has run, as Plausible
// spells them, in events, sessions and the sessions_dims_hourly rollup,
// whose merged sums survive the move to the new value.
func TestVocabularyRewrite(t *testing.T) {
	db := chtest.New(t)
	before := fstest.MapFS{}
	all := migrations.Files()
	names, err := fs.Glob(all, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n < "0012" {
			b, _ := fs.ReadFile(all, n)
			before[n] = &fstest.MapFile{Data: b}
		}
	}
	target := migrations.Target{Database: db.Database}
	if _, err := migrations.NewRunner(db.Conn, target, before, nil).Apply(ctx(t)); err != nil {
		t.Fatal(err)
	}
	old := [][3]string{ // channel, device, screen
		{"direct", "desktop", "desktop"}, {"search", "mobile", "mobile"}, {"social", "tablet", "tablet"},
		{"email", "desktop", "laptop"}, {"paid", "mobile", ""}, {"referral", "desktop", "laptop"},
	}
	for i, o := range old {
		for _, q := range []string{
			"INSERT INTO events (site_id, ts, type, visitor_id, channel, device, screen) SELECT 'v.test', now(), 'pageview', ?, ?, ?, ?",
			"INSERT INTO sessions (site_id, sign, version, start, visitor_id, session_id, channel, device, screen) SELECT 'v.test', 1, 1, now(), ?, 1, ?, ?, ?",
		} {
			if err := db.Conn.Exec(ctx(t), q, uint64(i+1), o[0], o[1], o[2]); err != nil {
				t.Fatal(err)
			}
		}
		for d, dim := range []string{"visit:channel", "visit:device", "visit:screen"} {
			if o[d] == "" {
				continue
			}
			if err := db.Conn.Exec(ctx(t), `INSERT INTO sessions_dims_hourly (site_id, dim, hour, value, visitors, visits)
				SELECT 'v.test', ?, toStartOfHour(now()), ?, uniqState(toUInt64(?)), sumState(toInt64(1))`, dim, o[d], uint64(i+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := migrations.NewRunner(db.Conn, target, all, nil).Apply(ctx(t)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for count(t, db, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the vocabulary mutations did not finish in 90 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []struct{ dim, sql string }{
		{"visit:channel", "SELECT DISTINCT channel FROM events"},
		{"visit:channel", "SELECT DISTINCT channel FROM sessions"},
		{"visit:channel", "SELECT DISTINCT value FROM sessions_dims_hourly WHERE dim = 'visit:channel'"},
		{"visit:device", "SELECT DISTINCT device FROM events"},
		{"visit:device", "SELECT DISTINCT device FROM sessions"},
		{"visit:device", "SELECT DISTINCT value FROM sessions_dims_hourly WHERE dim = 'visit:device'"},
		{"visit:screen", "SELECT DISTINCT screen FROM events WHERE screen != ''"},
		{"visit:screen", "SELECT DISTINCT screen FROM sessions WHERE screen != ''"},
		{"visit:screen", "SELECT DISTINCT value FROM sessions_dims_hourly WHERE dim = 'visit:screen'"},
	} {
		got := distinct(t, db, c.sql)
		vocab := model.Lookup(c.dim).Vocabulary
		for _, v := range got {
			if !slices.Contains(vocab, v) {
				t.Errorf("%s: %q is not in %s's vocabulary %v (all: %v)", c.sql, v, c.dim, vocab, got)
			}
		}
		if len(got) == 0 {
			t.Errorf("%s: no rows", c.sql)
		}
	}
	// The rollup's states moved with their values: three desktop visits
	// under Desktop, and nothing counted twice.
	var visits int64
	var visitors uint64
	if err := db.Conn.QueryRow(ctx(t), `SELECT sumMerge(visits), uniqMerge(visitors) FROM sessions_dims_hourly
		WHERE dim = 'visit:device' AND value = 'Desktop'`).Scan(&visits, &visitors); err != nil {
		t.Fatal(err)
	}
	if visits != 3 || visitors != 3 {
		t.Errorf("Desktop in the rollup: %d visits of %d visitors, want 3 and 3", visits, visitors)
	}
}

func distinct(t *testing.T, db *chtest.DB, q string) []string {
	t.Helper()
	rows, err := db.Conn.Query(ctx(t), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func count(t *testing.T, db *chtest.DB, q string) uint64 {
	t.Helper()
	var n uint64
	if err := db.Conn.QueryRow(ctx(t), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
