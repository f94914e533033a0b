// Package geotest writes tiny GeoIP2-style .mmdb files for tests, so that
// tests that need exact geo answers do not depend on a real database.
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Network is one entry: every address in CIDR resolves to this place.
// Subdivision is the ISO 3166-2 suffix ("BE" for Berlin); empty Subdivision
// and City write a country-only record.
type Network struct {
	CIDR        string
	Country     string
	Subdivision string
	City        string
}

// Write writes a database of dbType ("GeoIP2-City", "GeoLite2-City",
// "GeoLite2-Country", ...) holding networks into t's temporary directory
// and returns its path. ipVersion is 4 or 6 (a v6 tree holds v4 too).
func Write(t testing.TB, dbType string, ipVersion int, networks []Network) string {
	t.Helper()
	return WriteRecords(t, dbType, ipVersion, func(insert func(cidr string, rec mmdbtype.Map)) {
		for _, n := range networks {
			rec := mmdbtype.Map{
				"country": mmdbtype.Map{
					"iso_code": mmdbtype.String(n.Country),
					"names":    mmdbtype.Map{"en": mmdbtype.String("Country " + n.Country)},
				},
			}
			if n.Subdivision != "" {
				rec["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{
					"iso_code": mmdbtype.String(n.Subdivision),
					"names":    mmdbtype.Map{"en": mmdbtype.String("Region " + n.Subdivision)},
				}}
			}
			if n.City != "" {
				rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.City)}}
			}
			insert(n.CIDR, rec)
		}
	})
}

// WriteRecords writes a database of dbType holding the records fill
// inserts, for tests that need records of their own shape, and returns
// its path. In a v4 database (ipVersion 4) v6 networks are skipped.
func WriteRecords(t testing.TB, dbType string, ipVersion int, fill func(insert func(cidr string, rec mmdbtype.Map))) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		IPVersion:               ipVersion,
		RecordSize:              24,
		IncludeReservedNetworks: true, // fixtures use documentation ranges
		Languages:               []string{"en"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fill(func(cidr string, rec mmdbtype.Map) {
		_, network, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if ipVersion == 4 && network.IP.To4() == nil {
			return
		}
		if err := tree.Insert(network, rec); err != nil {
			t.Fatal(err)
		}
	})
	path := filepath.Join(t.TempDir(), strings.ReplaceAll(dbType, " ", "_")+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
