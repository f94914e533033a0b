// Package geonames names countries (ISO 3166-1 alpha-2 codes) and their
// subdivisions (ISO 3166-2 codes, as the collector stores regions: "DE-BE")
// in English, for the Stats API's visit:country_name and
// visit:region_name. The names come from Debian's iso-codes package
// (/usr/share/iso-codes/json, maintained by Debian and updated with the
// ISO standards; `make run` and `make test` install it), read once; where
// it is missing, a name is its code.
package geonames

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// Dir holds iso_3166-1.json and iso_3166-2.json.
var Dir = "/usr/share/iso-codes/json"

// Table is a list of codes and their names, in the same order: the two
// arrays of ClickHouse's transform().
type Table struct {
	Codes, Names []string
}

var (
	once               sync.Once
	countries, regions Table
)

func load() {
	var c struct {
		Entries []struct {
			Alpha2     string `json:"alpha_2"`
			Name       string `json:"name"`
			CommonName string `json:"common_name"`
		} `json:"3166-1"`
	}
	if read("iso_3166-1.json", &c) {
		m := map[string]string{}
		for _, e := range c.Entries {
			n := e.Name
			if e.CommonName != "" {
				n = e.CommonName // "South Korea", not "Korea, Republic of"
			}
			m[e.Alpha2] = n
		}
		countries = table(m)
	}
	var r struct {
		Entries []struct {
			Code string `json:"code"`
			Name string `json:"name"`
		} `json:"3166-2"`
	}
	if read("iso_3166-2.json", &r) {
		m := map[string]string{}
		for _, e := range r.Entries {
			m[e.Code] = e.Name
		}
		regions = table(m)
	}
}

func read(name string, v any) bool {
	b, err := os.ReadFile(filepath.Join(Dir, name))
	return err == nil && json.Unmarshal(b, v) == nil
}

func table(m map[string]string) Table {
	var t Table
	for c := range m {
		t.Codes = append(t.Codes, c)
	}
	sort.Strings(t.Codes)
	for _, c := range t.Codes {
		t.Names = append(t.Names, m[c])
	}
	return t
}

// Countries returns the country names by alpha-2 code (empty without
// the iso-codes data).
func Countries() Table { once.Do(load); return countries }

// Regions returns the subdivision names by ISO 3166-2 code.
func Regions() Table { once.Do(load); return regions }
