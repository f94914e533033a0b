package eventlog

import (
	"reflect"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/model/modeltest"
)

// TestRecordRoundTrip encodes varied events and decodes them with one
// Interner, as the spool reader does: each comes back equal, whatever the
// previous record held in the same string fields.
func TestRecordRoundTrip(t *testing.T) {
	var in Interner
	var buf []byte
	for i := range 50 {
		want := modeltest.Event(i)
		buf = AppendRecord(buf[:0], want)
		got := new(model.Event)
		if err := DecodeRecord(buf, got, &in); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !reflect.DeepEqual(norm(got), norm(want)) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// norm makes empty and nil byte slices compare equal.
func norm(e *model.Event) model.Event {
	c := *e
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Slice && f.Len() == 0 {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return c
}

// FuzzDecodeRecord feeds arbitrary payloads to the spool record decoder:
// it must never panic, and what it accepts must encode back to the same
// payload.
func FuzzDecodeRecord(f *testing.F) {
	for i := range 4 {
		f.Add(AppendRecord(nil, modeltest.Event(i)))
	}
	f.Add([]byte{recordV1})
	f.Add([]byte{})
	var in Interner
	f.Fuzz(func(t *testing.T, p []byte) {
		e := new(model.Event)
		if err := DecodeRecord(p, e, &in); err != nil {
			return
		}
		again := AppendRecord(nil, e)
		e2 := new(model.Event)
		if err := DecodeRecord(again, e2, &in); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(norm(e), norm(e2)) {
			t.Fatalf("decode(encode(decode(p))) differs:\n%+v\n%+v", e, e2)
		}
	})
}
