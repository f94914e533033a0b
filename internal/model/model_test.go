package model

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestEventNewIDIsVersion4AndUnique(t *testing.T) {
	seen := map[[16]byte]bool{}
	var e Event
	for range 10000 {
		e.NewID()
		if e.EventID.Version() != 4 || e.EventID.Variant() != uuid.RFC4122 {
			t.Fatalf("%s: version %d variant %v", e.EventID, e.EventID.Version(), e.EventID.Variant())
		}
		if seen[e.EventID] {
			t.Fatalf("%s repeated", e.EventID)
		}
		seen[e.EventID] = true
	}
}

// TestAttrDimsCoverAttrs: every field of Attrs belongs to exactly one
// attribution dimension, so a field added without its dimension (which
// the session rows, the rollup and the query engine would all miss)
// fails here.
func TestAttrDimsCoverAttrs(t *testing.T) {
	var a Attrs
	for i, d := range AttrDims {
		p := d.Attr(&a)
		if *p != "" {
			t.Errorf("%s points at a field another dimension set", d.Name)
		}
		*p = d.Name
		if i >= reflect.TypeFor[Attrs]().NumField() {
			t.Fatalf("more attribution dimensions than Attrs has fields")
		}
	}
	v := reflect.ValueOf(a)
	for i := range v.NumField() {
		if v.Field(i).String() == "" {
			t.Errorf("Attrs.%s belongs to no dimension", v.Type().Field(i).Name)
		}
	}
	if n := v.NumField(); len(AttrDims) != n {
		t.Errorf("%d attribution dimensions for %d fields", len(AttrDims), n)
	}
}

// TestAttrsViewFillsEveryField: an event with every attribution field set
// gives attribution with none empty.
func TestAttrsViewFillsEveryField(t *testing.T) {
	e := Event{
		Referrer: []byte("r"), ReferrerSource: "s", Channel: "c", UTMSource: []byte("us"), UTMMedium: []byte("um"),
		UTMCampaign: []byte("uc"), UTMTerm: []byte("ut"), UTMContent: []byte("uo"), CountryCode: "DE", Region: "DE-BE",
		City: "Berlin", Browser: "b", OS: "o", Device: "d", Screen: "sc", ConnectionType: "4g",
	}
	a := AttrsView(&e)
	for _, d := range AttrDims {
		if *d.Attr(&a) == "" {
			t.Errorf("%s is empty", d.Name)
		}
	}
}

func TestDimensionsTable(t *testing.T) {
	names := map[string]bool{}
	for _, d := range Dimensions {
		if names[d.Name] {
			t.Errorf("%s listed twice", d.Name)
		}
		names[d.Name] = true
		if Lookup(d.Name) == nil || Lookup(d.Name).Name != d.Name {
			t.Errorf("Lookup(%q) does not find it", d.Name)
		}
		if d.Key == "" || d.Label == "" || d.Column == "" {
			t.Errorf("%s: key, label and column are required", d.Name)
		}
		if !strings.HasPrefix(d.Name, "visit:") && !strings.HasPrefix(d.Name, "event:") && !strings.HasPrefix(d.Name, "email:") {
			t.Errorf("%s: want visit:, event: or email:", d.Name)
		}
		if d.Attr != nil && d.Table != Sessions {
			t.Errorf("%s: attribution lives on sessions", d.Name)
		}
		for _, typ := range d.Types {
			if TypeName(typ) == "" {
				t.Errorf("%s counts an unknown event type %d", d.Name, typ)
			}
		}
	}
	if Lookup("event:props:plan") != nil || !IsCustom("event:props:plan") {
		t.Error("custom properties are not in the table")
	}
}

// TestEmptySourceIsDirect: the reported value of an empty source is
// "Direct / None" in SQL and in Go alike.
func TestEmptySourceIsDirect(t *testing.T) {
	d := Lookup("visit:source")
	if got, want := d.SQL(), "if(referrer_source = '', 'Direct / None', referrer_source)"; got != want {
		t.Errorf("SQL %q, want %q", got, want)
	}
	var a Attrs
	if got := d.Value(&a); got != DirectNone {
		t.Errorf("empty source reports %q, want %q", got, DirectNone)
	}
	a.Source = "Google"
	if got := d.Value(&a); got != "Google" {
		t.Errorf("source reports %q", got)
	}
	if got := Lookup("visit:referrer").Value(&Attrs{}); got != "" {
		t.Errorf("empty referrer reports %q", got)
	}
}

// TestUnsetAtReadOnly: an empty referrer reports "Direct / None" and an
// empty browser, OS, device or version "(not set)", mapped at read time:
// what ingest and the rollups store (SQL, Value) stays empty.
func TestUnsetAtReadOnly(t *testing.T) {
	for name, want := range map[string]string{
		"visit:referrer": DirectNone, "visit:browser": NotSet, "visit:browser_version": NotSet,
		"visit:os": NotSet, "visit:os_version": NotSet, "visit:device": NotSet,
	} {
		d := Lookup(name)
		if got := d.SQL(); got != d.Column {
			t.Errorf("%s: stored as %q, want the column %q", name, got, d.Column)
		}
		if d.Attr != nil {
			if got := d.Value(&Attrs{}); got != "" {
				t.Errorf("%s: rollups store %q for an empty value, want \"\"", name, got)
			}
		}
		if got := d.ReportSQL("value"); !strings.Contains(got, "if(") || !strings.Contains(got, "'"+want+"'") {
			t.Errorf("%s: reported as %s, want %q for an empty value", name, got, want)
		}
	}
}
