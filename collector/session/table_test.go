package session

import (
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// TestSessionTableModel checks the open-addressing table against a map:
// random puts and deletes (deletion shifts later slots back), in a table
// that grows and runs nearly full, with keys that share their home slot.
// Every key held must be found at a slot that holds it, and no other.
func TestSessionTableModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c := NewCache(CacheConfig{MaxSessions: 2047}) // one shard
	sh := &c.shards[0]
	model := map[[2]uint64]uint64{} // (site, visitor) → session id
	check := func(step int) {
		if sh.used != len(model) {
			t.Fatalf("step %d: %d used, model holds %d", step, sh.used, len(model))
		}
		for k, id := range model {
			i := sh.find(uint32(k[0]), k[1])
			if i < 0 || sh.slots[i].id != id || sh.colds[i].visitor0 != k[1] {
				t.Fatalf("step %d: key %v not found (slot %d)", step, k, i)
			}
		}
		if sh.used*8 > c.per*7 || len(sh.slots) != c.per {
			t.Fatalf("step %d: %d of %d slots used (table of %d)", step, sh.used, c.per, len(sh.slots))
		}
	}
	for step := range 20000 {
		k := [2]uint64{uint64(r.IntN(3)), uint64(r.IntN(600) + 1)}
		if i := sh.find(uint32(k[0]), k[1]); i >= 0 {
			if _, ok := model[k]; !ok {
				t.Fatalf("step %d: found %v, which was deleted", step, k)
			}
			if r.IntN(2) == 0 {
				sh.deleteAt(i)
				delete(model, k)
			}
		} else {
			if _, ok := model[k]; ok {
				t.Fatalf("step %d: lost %v", step, k)
			}
			id := r.Uint64() | 1
			if c.full(sh) {
				c.grow(c.per)
			}
			sh.put(&slot{visitor: k[1], site: uint32(k[0]), id: id}, &cold{visitor0: k[1]})
			model[k] = id
		}
		if step%997 == 0 {
			check(step)
		}
	}
	check(-1)
	if unsafe.Sizeof(slot{}) != 128 {
		t.Errorf("a slot is %d bytes, want 128 (two cache lines)", unsafe.Sizeof(slot{}))
	}
	// Slots and colds live in memory the garbage collector does not scan;
	// frozen sessions wait in arrays it need not scan.
	for _, typ := range []reflect.Type{reflect.TypeFor[slot](), reflect.TypeFor[cold](), reflect.TypeFor[frozen]()} {
		if p := pointerIn(typ); p != "" {
			t.Errorf("%s holds a pointer (%s): it must hold none", typ, p)
		}
	}
}

// pointerIn names a field of typ that is or holds a pointer ("": none).
func pointerIn(typ reflect.Type) string {
	switch typ.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int,
		reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint, reflect.Float32, reflect.Float64:
		return ""
	case reflect.Array:
		return pointerIn(typ.Elem())
	case reflect.Struct:
		for i := range typ.NumField() {
			if p := pointerIn(typ.Field(i).Type); p != "" {
				return typ.Field(i).Name + "." + p
			}
		}
		return ""
	}
	return typ.String()
}

// TestSessionTablesGrowTogether checks that the shards' tables grow as one
// array, in a huge-page mapping once it is big enough, and that the
// sessions survive each growth.
func TestSessionTablesGrowTogether(t *testing.T) {
	c := NewCache(CacheConfig{})
	const n = 40_000
	ids := make([]uint64, n+1)
	for v := uint64(1); v <= n; v++ {
		ids[v], _ = c.Touch("example.com", v, t0, &Touch{Pageview: true, Path: "/"})
	}
	if c.Len() != n || c.Evictions() != 0 {
		t.Fatalf("Len %d, Evictions %d", c.Len(), c.Evictions())
	}
	for v := uint64(1); v <= n; v++ {
		if id, _ := c.Touch("example.com", v, t0.Add(time.Second), &Touch{Pageview: true, Path: "/"}); id != ids[v] {
			t.Fatalf("visitor %d: session %d after growing, was %d", v, id, ids[v])
		}
	}
	first := &c.shards[0].slots[0]
	for i := range c.shards {
		sh := &c.shards[i]
		if len(sh.slots) != c.per || &sh.slots[0] != (*slot)(unsafe.Add(unsafe.Pointer(first), i*c.per*int(unsafe.Sizeof(slot{})))) {
			t.Fatalf("shard %d's table is not part %d of one array of %d slots per shard", i, i, c.per)
		}
	}
	if runtime.GOOS == "linux" {
		for _, a := range []struct {
			name  string
			m     []byte
			first unsafe.Pointer
		}{{"slots", c.mapping.slots, unsafe.Pointer(first)}, {"colds", c.mapping.colds, unsafe.Pointer(&c.shards[0].colds[0])}} {
			if a.m == nil || uintptr(a.first) < uintptr(unsafe.Pointer(&a.m[0])) || uintptr(a.first)%hugePage != 0 {
				t.Fatalf("%d %s per shard are not in a huge-page-aligned mapping", c.per, a.name)
			}
		}
	}
}

func TestSessionShardSize(t *testing.T) {
	if n := unsafe.Sizeof(sessionShard{}); n%64 != 0 {
		t.Errorf("a shard is %d bytes: shards share cache lines", n)
	}
}
