package sink

import (
	"testing"
	"time"
)

func TestInsertBuilderLeavesOutDefaultColumns(t *testing.T) {
	var ib insertBuilder
	names := []string{"site_id", "ts", "name", "rtt", "props", "revenue", "tags"}
	cols := []any{
		[]string{"a.com", "a.com"},
		[]time.Time{{}, {}},
		[]string{"", ""},      // all empty: left out
		[]uint16{0, 3},        // one value: kept
		[][]string{{}, {}},    // all empty arrays: left out
		[]int64{0, 0},         // all zero: left out
		[][]string{{}, {"x"}}, // one non-empty array: kept
	}
	q, kept := ib.build("events", names, cols)
	if q != "INSERT INTO events (site_id, ts, rtt, tags)" {
		t.Fatalf("query %q", q)
	}
	if len(kept) != 4 {
		t.Fatalf("kept %d columns, want 4", len(kept))
	}
	if _, ok := kept[2].([]uint16); !ok {
		t.Fatalf("column order lost: %T", kept[2])
	}
	// The builder is reused: a batch with another column set gets its own statement.
	q2, _ := ib.build("events", names[:3], []any{[]string{"a"}, []time.Time{{}}, []string{"n"}})
	if q2 != "INSERT INTO events (site_id, ts, name)" || q != "INSERT INTO events (site_id, ts, rtt, tags)" {
		t.Fatalf("queries %q, %q", q, q2)
	}
}
