package locate

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/glimpse-analytics/glimpse/collector/locate/geotest"
)

// fixtureNetworks are the networks written into test databases. They are
// documentation and private ranges, so the writer must include reserved
// networks.
var fixtureNetworks = []struct {
	cidr                  string
	country, subdiv, city string
}{
	{cidr: "203.0.113.0/24", country: "DE", subdiv: "BE", city: "Berlin"},
	{cidr: "198.51.100.0/25", country: "GB", subdiv: "ENG", city: "London"},
	{cidr: "198.51.100.128/25", country: "FR"}, // country only
	{cidr: "2001:db8:1::/48", country: "JP", subdiv: "13", city: "Tokyo"},
	{cidr: "2001:db8:2::/48", country: "US", subdiv: "CA", city: "San Francisco"},
	{cidr: "2001:db8:3::/48", country: "US", subdiv: "CA", city: "San Francisco"}, // same record as :2::
	{cidr: "10.0.0.0/8", country: "ZZ", subdiv: "X", city: "Private"},             // must never be reported
}

// writeFixture writes a small .mmdb of dbType and returns its path. With
// full false only the country is written, as in a Country database.
func writeFixture(t testing.TB, dbType string, ipVersion int, full bool) string {
	t.Helper()
	return geotest.WriteRecords(t, dbType, ipVersion, func(insert func(cidr string, rec mmdbtype.Map)) {
		for _, n := range fixtureNetworks {
			rec := mmdbtype.Map{
				"country": mmdbtype.Map{
					"iso_code":   mmdbtype.String(n.country),
					"geoname_id": mmdbtype.Uint32(1),
					"names":      mmdbtype.Map{"en": mmdbtype.String("Country " + n.country), "de": mmdbtype.String("Land")},
				},
				"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
			}
			if full && n.subdiv != "" {
				rec["subdivisions"] = mmdbtype.Slice{
					mmdbtype.Map{"iso_code": mmdbtype.String(n.subdiv), "names": mmdbtype.Map{"en": mmdbtype.String("Sub " + n.subdiv)}},
					mmdbtype.Map{"iso_code": mmdbtype.String("SECOND")},
				}
				rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.city), "ja": mmdbtype.String("都市")}}
				rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(1.5), "longitude": mmdbtype.Float64(2.5)}
			}
			insert(n.cidr, rec)
		}
	})
}

func openFixture(t testing.TB, dbType string, ipVersion int, full bool) *Geo {
	t.Helper()
	g, err := Open(writeFixture(t, dbType, ipVersion, full))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestGeoLookup(t *testing.T) {
	city := openFixture(t, "GeoLite2-City", 6, true)
	country := openFixture(t, "GeoLite2-Country", 6, false)
	city4 := openFixture(t, "GeoIP2-City", 4, true)

	berlin := Place{CountryCode: "DE", Region: "DE-BE", City: "Berlin"}
	london := Place{CountryCode: "GB", Region: "GB-ENG", City: "London"}
	tokyo := Place{CountryCode: "JP", Region: "JP-13", City: "Tokyo"}
	sf := Place{CountryCode: "US", Region: "US-CA", City: "San Francisco"}

	tests := []struct {
		name string
		geo  *Geo
		ip   string
		p    Precision
		want Place
	}{
		{"v4 city", city, "203.0.113.5", PrecisionCity, berlin},
		{"v4 region", city, "203.0.113.5", PrecisionRegion, Place{CountryCode: "DE", Region: "DE-BE"}},
		{"v4 country", city, "203.0.113.5", PrecisionCountry, Place{CountryCode: "DE"}},
		{"v4 other network", city, "198.51.100.1", PrecisionCity, london},
		{"v4 country-only record", city, "198.51.100.200", PrecisionCity, Place{CountryCode: "FR"}},
		{"v4-mapped v6", city, "::ffff:203.0.113.5", PrecisionCity, berlin},
		{"v6 city", city, "2001:db8:1::1", PrecisionCity, tokyo},
		{"v6 region", city, "2001:db8:1:ffff::1", PrecisionRegion, Place{CountryCode: "JP", Region: "JP-13"}},
		{"v6 shared record", city, "2001:db8:3::1", PrecisionCity, sf},
		{"v6 unknown", city, "2001:db8:4::1", PrecisionCity, Place{}},
		{"v4 unknown", city, "192.0.2.1", PrecisionCity, Place{}},
		{"private in db is withheld", city, "10.1.2.3", PrecisionCity, Place{}},
		{"loopback", city, "127.0.0.1", PrecisionCity, Place{}},
		{"v6 loopback", city, "::1", PrecisionCity, Place{}},
		{"link-local", city, "fe80::1", PrecisionCity, Place{}},
		{"zero addr", city, "", PrecisionCity, Place{}},
		{"country db at city precision", country, "203.0.113.5", PrecisionCity, Place{CountryCode: "DE"}},
		{"country db v6", country, "2001:db8:2::1", PrecisionRegion, Place{CountryCode: "US"}},
		{"v4-only db v4", city4, "203.0.113.5", PrecisionCity, berlin},
		{"v4-only db v6", city4, "2001:db8:1::1", PrecisionCity, Place{}},
		{"nil geo", nil, "203.0.113.5", PrecisionCity, Place{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ip netip.Addr
			if tt.ip != "" {
				ip = netip.MustParseAddr(tt.ip)
			}
			// Twice: the second answer comes from the cache.
			for range 2 {
				if got := tt.geo.Lookup(ip, tt.p); got != tt.want {
					t.Fatalf("Lookup(%s, %s) = %+v, want %+v", tt.ip, tt.p, got, tt.want)
				}
			}
		})
	}
}

func TestGeoCacheKeyedByRecord(t *testing.T) {
	g := openFixture(t, "GeoLite2-City", 6, true)
	for _, ip := range []string{"2001:db8:2::1", "2001:db8:2::2", "2001:db8:3::1", "2001:db8:3:1::1"} {
		g.Lookup(netip.MustParseAddr(ip), PrecisionCity)
	}
	if n := g.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries after four addresses sharing one record, want 1", n)
	}
}

func TestPlaceCacheBounded(t *testing.T) {
	var c placeCache
	c.init(32)
	for off := range uintptr(10000) {
		c.put(off, Place{CountryCode: "DE"})
	}
	if n := c.len(); n > 32 {
		t.Errorf("cache holds %d entries, want at most 32", n)
	}
	c.put(1<<40, Place{City: "x"})
	if pl, ok := c.get(1 << 40); !ok || pl.City != "x" {
		t.Errorf("get after put = %+v, %v", pl, ok)
	}
}

func TestGeoConcurrent(t *testing.T) {
	g := openFixture(t, "GeoLite2-City", 6, true)
	ips := []netip.Addr{
		netip.MustParseAddr("203.0.113.5"),
		netip.MustParseAddr("198.51.100.1"),
		netip.MustParseAddr("2001:db8:1::1"),
		netip.MustParseAddr("2001:db8:2::1"),
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 1000 {
				if g.Lookup(ips[(i+j)%len(ips)], PrecisionCity).CountryCode == "" {
					t.Error("empty country")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestOpen(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"city", writeFixture(t, "GeoLite2-City", 6, true), ""},
		{"country", writeFixture(t, "GeoLite2-Country", 6, false), ""},
		{"geoip2 country v4", writeFixture(t, "GeoIP2-Country", 4, false), ""},
		{"asn", writeFixture(t, "GeoLite2-ASN", 6, false), `its type "GeoLite2-ASN" is not a GeoIP2/GeoLite2 City or Country database`},
		{"unknown type", writeFixture(t, "Acme-Locations", 6, false), `its type "Acme-Locations" is not a GeoIP2/GeoLite2 City or Country database`},
		{"missing", filepath.Join(t.TempDir(), "missing.mmdb"), "cannot open GeoIP database"},
		{"garbage", garbage, "cannot open GeoIP database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Open(tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if g.DatabaseType() == "" || g.BuildTime().IsZero() {
					t.Errorf("metadata missing: %q %v", g.DatabaseType(), g.BuildTime())
				}
				if err := g.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				g.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("err = %q, want it to contain %q and the path", err, tt.wantErr)
			}
		})
	}
}

func TestNilGeo(t *testing.T) {
	var g *Geo
	if g.Close() != nil || g.DatabaseType() != "" || !g.BuildTime().IsZero() {
		t.Error("nil Geo is not inert")
	}
}

func TestLookupAfterClose(t *testing.T) {
	g, err := Open(writeFixture(t, "GeoLite2-City", 6, true))
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if got := g.Lookup(netip.MustParseAddr("203.0.113.5"), PrecisionCity); got != (Place{}) {
		t.Errorf("Lookup after Close = %+v", got)
	}
}

func TestParsePrecision(t *testing.T) {
	for _, p := range []Precision{PrecisionCountry, PrecisionRegion, PrecisionCity} {
		got, err := ParsePrecision(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePrecision(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParsePrecision("street"); err == nil || !strings.Contains(err.Error(), `"street"`) {
		t.Errorf("ParsePrecision(street) err = %v", err)
	}
	if var0 := Precision(0); var0 != PrecisionCountry {
		t.Error("zero Precision is not country")
	}
}

// TestGeoNetCacheOnlyWholeNetworks: a /24 the database splits (two /25s
// with different countries) must not be answered from the /24 cache, and
// one it holds whole must be.
func TestGeoNetCacheOnlyWholeNetworks(t *testing.T) {
	g := openFixture(t, "GeoLite2-City", 6, true)
	lookup := func(s string) Place { return g.Lookup(netip.MustParseAddr(s), PrecisionCountry) }
	for range 2 {
		if got := lookup("198.51.100.5"); got.CountryCode != "GB" {
			t.Fatalf("198.51.100.5 in %s, want GB", got.CountryCode)
		}
		if got := lookup("198.51.100.200"); got.CountryCode != "FR" {
			t.Fatalf("198.51.100.200 in %s, want FR: the /24 answer of its other half leaked", got.CountryCode)
		}
	}
	cached := func(s string) bool {
		key, slot := g.nets.slot(netip.MustParseAddr(s))
		e := slot.Load()
		return e != nil && e.key == key
	}
	if cached("198.51.100.5") {
		t.Error("a /24 split into two database networks is cached")
	}
	lookup("203.0.113.5")
	lookup("2001:db8:1::1")
	if !cached("203.0.113.77") || !cached("2001:db8:1:ffff::1") {
		t.Error("a /24 or /48 that one database network holds is not cached")
	}
	if got := lookup("203.0.113.77"); got.CountryCode != "DE" {
		t.Errorf("203.0.113.77 from the cache: %s, want DE", got.CountryCode)
	}
}
