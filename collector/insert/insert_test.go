package insert

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

func TestInsertBuilderLeavesOutDefaultColumns(t *testing.T) {
	var ib Builder
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
	q, kept := ib.Build("events", names, cols)
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
	q2, _ := ib.Build("events", names[:3], []any{[]string{"a"}, []time.Time{{}}, []string{"n"}})
	if q2 != "INSERT INTO events (site_id, ts, name)" || q != "INSERT INTO events (site_id, ts, rtt, tags)" {
		t.Fatalf("queries %q, %q", q, q2)
	}
}

// TestPreparedInsertReuse pins down what Prepared relies on in
// clickhouse-go: a sent batch whose columns are reset and refilled sends
// exactly the new rows, errors still come back, and a failed batch is not
// kept.
func TestPreparedInsertReuse(t *testing.T) {
	db := chtest.New(t)
	ctx := context.Background()
	if err := db.Conn.Exec(ctx, "CREATE TABLE t (k UInt32, s String, a Array(String)) ENGINE = MergeTree ORDER BY k"); err != nil {
		t.Fatal(err)
	}
	ps := Prepared{Table: "t"}
	const q = "INSERT INTO t (k, s, a)"
	var first driver.Batch
	for round := range 4 {
		n := 1000 * (round + 1) // growing and shrinking would both work; grow to cross buffer sizes
		ks, ss, as := make([]uint32, n), make([]string, n), make([][]string, n)
		for i := range ks {
			ks[i] = uint32(round*100000 + i)
			ss[i] = fmt.Sprintf("r%d-%d", round, i)
			as[i] = []string{ss[i], "x"}
		}
		if err := ps.Insert(ctx, db.Conn, 10*time.Second, q, []any{ks, ss, as}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(ps.list) != 1 {
			t.Fatalf("round %d: %d prepared inserts kept, want 1", round, len(ps.list))
		}
		if round == 0 {
			first = ps.list[0].batch
			// The server still runs a query with the id of this INSERT:
			// the next INSERT of the batch must have an id of its own
			// (code 216 otherwise).
			prev := ps.list[0].id
			running := make(chan struct{})
			go func() {
				qctx := clickhouse.Context(ctx, clickhouse.WithQueryID(prev))
				close(running)
				_ = db.Conn.Exec(qctx, "SELECT sleep(2)")
			}()
			<-running
			deadline := time.Now().Add(5 * time.Second)
			for n, _ := Running(ctx, db.Conn, []string{prev}); n == 0 && time.Now().Before(deadline); n, _ = Running(ctx, db.Conn, []string{prev}) {
				time.Sleep(10 * time.Millisecond)
			}
		} else if ps.list[0].batch != first {
			t.Fatalf("round %d: the batch was prepared again instead of reused", round)
		}
		var rows, bad uint64
		err := db.Conn.QueryRow(ctx, `SELECT count(), countIf(s != concat('r', toString(intDiv(k, 100000)), '-', toString(k % 100000)) OR a != [s, 'x'])
			FROM t WHERE intDiv(k, 100000) = ?`, uint32(round)).Scan(&rows, &bad)
		if err != nil {
			t.Fatal(err)
		}
		if rows != uint64(n) || bad != 0 {
			t.Fatalf("round %d: %d rows (%d wrong), want %d", round, rows, bad, n)
		}
	}
	var total uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM t").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 1000+2000+3000+4000 {
		t.Fatalf("%d rows in all: a reused batch resent old rows", total)
	}

	// A server-side failure reaches the caller and the batch is dropped.
	if err := db.Conn.Exec(ctx, "DROP TABLE t"); err != nil {
		t.Fatal(err)
	}
	err := ps.Insert(ctx, db.Conn, 10*time.Second, q, []any{[]uint32{1}, []string{"a"}, [][]string{{}}})
	if err == nil || !strings.Contains(err.Error(), "cannot insert into t") {
		t.Fatalf("insert into a dropped table: %v", err)
	}
	if len(ps.list) != 0 {
		t.Fatalf("a failed batch was kept")
	}
	ps.CloseAll()
}

func TestPreparedInsertsKeepRecentColumnSets(t *testing.T) {
	var ps Prepared
	closed := 0
	for i := range maxPrepared + 2 {
		ps.put(&preparedInsert{query: fmt.Sprint(i), sent: true, cancel: func() { closed++ }})
	}
	if len(ps.list) != maxPrepared || closed != 2 {
		t.Fatalf("kept %d, closed %d", len(ps.list), closed)
	}
	if p := ps.take(fmt.Sprint(maxPrepared + 1)); p == nil || ps.take("0") != nil {
		t.Fatal("the most recent must be kept and the oldest dropped")
	}
	ps.CloseAll()
	if len(ps.list) != 0 || closed != maxPrepared+1 {
		t.Fatalf("closeAll: kept %d, closed %d", len(ps.list), closed)
	}
}

// TestColBufsReachDriver checks that a stream's String columns get the
// buffers of the stream before (the same memory, not a copy), that the
// rows stored through lent buffers are the rows appended, and that an
// aborted stream gives its buffers back too. It fails if a clickhouse-go
// upgrade changes column.String so that lending turns itself off.
func TestColBufsReachDriver(t *testing.T) {
	if !colStrOK {
		t.Fatal("column.String has no proto.ColStr field named col: streams cannot reuse their buffers")
	}
	db := chtest.New(t)
	ctx := context.Background()
	if err := db.Conn.Exec(ctx, "CREATE TABLE t (k UInt32, s String, u String) ENGINE = MergeTree ORDER BY k"); err != nil {
		t.Fatal(err)
	}
	const q = "INSERT INTO t (k, s, u)"
	var bufs Buffers
	var kept *byte // first byte of s's buffer after the last stream
	for round := range 4 {
		s, err := OpenStream(ctx, db.Conn, 10*time.Second, "t", q, &bufs)
		if err != nil {
			t.Fatal(err)
		}
		p := colStrOf(s.cols[1])
		if p == nil {
			t.Fatalf("column s is %T, not a String column", s.cols[1])
		}
		switch {
		case round == 0 && cap(p.Buf) != 0:
			t.Fatal("a first stream found buffers to reuse")
		case round > 0 && (cap(p.Buf) == 0 || cap(p.Pos) == 0 || &p.Buf[:1][0] != kept):
			t.Fatalf("round %d: column s did not get the last stream's buffer", round)
		}
		for block := range 3 {
			const n = 500
			ks, ss, us := make([]uint32, n), make([]string, n), make([]string, n)
			for i := range ks {
				ks[i] = uint32(round*100000 + block*1000 + i)
				ss[i] = fmt.Sprintf("r%d-%d-%d", round, block, i)
				us[i] = strings.Repeat("u", i%7)
			}
			if err := s.Add([]any{ks, ss, us}, n); err != nil {
				t.Fatal(err)
			}
		}
		if round == 2 {
			// The buffers come back all the same. (18.16 may still store
			// the blocks it had: it treats a dropped connection as the end
			// of the data. The flusher's replays are deduplicated for it.)
			s.Abort()
		} else if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		if p.Buf != nil || p.Pos != nil {
			t.Fatalf("round %d: the ended batch still holds the buffers", round)
		}
		b, ok := bufs.free["s"]
		if !ok || cap(b.Buf) == 0 || len(b.Buf) != 0 || len(b.Pos) != 0 {
			t.Fatalf("round %d: buffers not taken back emptied: %v, cap %d, len %d", round, ok, cap(b.Buf), len(b.Buf))
		}
		kept = &b.Buf[:1][0]
	}
	var rows, bad uint64
	err := db.Conn.QueryRow(ctx, `SELECT count(), countIf(s != concat('r', toString(intDiv(k, 100000)), '-', toString(intDiv(k % 100000, 1000)), '-', toString(k % 1000))
		OR length(u) != (k % 1000) % 7) FROM t WHERE intDiv(k, 100000) != 2`).Scan(&rows, &bad)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 3*3*500 || bad != 0 {
		t.Fatalf("%d rows (%d wrong), want %d: 3 committed streams of 3 blocks", rows, bad, 3*3*500)
	}
}
