package locate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"
)

// Precision is how much geography is kept for a request. The zero value is
// the coarsest, PrecisionCountry.
type Precision uint8

// The precisions a site can choose (sites[].privacy.geo in the config).
const (
	PrecisionCountry Precision = iota // country code only
	PrecisionRegion                   // country and region
	PrecisionCity                     // country, region and city
)

// ParsePrecision parses "country", "region" or "city".
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "country":
		return PrecisionCountry, nil
	case "region":
		return PrecisionRegion, nil
	case "city":
		return PrecisionCity, nil
	}
	return 0, fmt.Errorf("cannot parse geo precision %q: want country, region or city", s)
}

// String returns "country", "region" or "city".
func (p Precision) String() string {
	switch p {
	case PrecisionCountry:
		return "country"
	case PrecisionRegion:
		return "region"
	case PrecisionCity:
		return "city"
	}
	return fmt.Sprintf("Precision(%d)", uint8(p))
}

// Place is the coarse geography of an address. Empty fields are unknown or
// withheld by the precision asked for.
type Place struct {
	// CountryCode is the ISO 3166-1 alpha-2 code, such as "DE".
	CountryCode string
	// Region is the ISO 3166-2 code of the first (largest) subdivision,
	// country code included, such as "DE-BE" for Berlin or "GB-ENG" for
	// England. Codes are stable and language-neutral, unlike names.
	Region string
	// City is the English city name, such as "Berlin".
	City string
}

// fold drops what precision p does not allow.
func (pl Place) fold(p Precision) Place {
	switch p {
	case PrecisionCity:
		return pl
	case PrecisionRegion:
		return Place{CountryCode: pl.CountryCode, Region: pl.Region}
	}
	return Place{CountryCode: pl.CountryCode}
}

// Geo looks up coarse geography in a GeoIP2 or GeoLite2 City or Country
// database. A nil *Geo is valid and knows nothing, so callers need no
// special case when no database is configured. A Geo is safe for
// concurrent use.
//
// Decoded places are cached by the offset of their record in the database,
// and by the /24 (IPv4) or /48 (IPv6) network around the address when the
// database's network holds all of it; never by full address, which the
// privacy model forbids keeping (those prefixes are what is stored anyway).
// To switch to an updated database, Open a new Geo, swap it in and Close
// the old one once no lookup uses it.
type Geo struct {
	db       *maxminddb.Reader
	ipv4Only bool
	cache    placeCache
	nets     netCache
}

// Open opens the .mmdb file at path, which must be a GeoIP2 or GeoLite2
// City or Country database (or one geoip2-golang treats as such, like
// DB-IP's City and Country Lite).
func Open(path string) (*Geo, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open GeoIP database %s: %w", path, err)
	}
	if err := checkType(path, db.Metadata); err != nil {
		_ = db.Close()
		return nil, err
	}
	g := &Geo{
		db:       db,
		ipv4Only: db.Metadata.IPVersion == 4,
	}
	g.cache.init(defaultPlaceCacheSize)
	g.nets.init(defaultNetCacheSize)
	return g, nil
}

// checkType lets geoip2 decide whether the database at path supports
// country lookups, and checks that it is the database already opened.
func checkType(path string, md maxminddb.Metadata) error {
	r, err := geoip2.Open(path)
	if err != nil {
		if r != nil {
			_ = r.Close()
		}
		var unknown geoip2.UnknownDatabaseTypeError
		if errors.As(err, &unknown) {
			return fmt.Errorf("cannot use GeoIP database %s: its type %q is not a GeoIP2/GeoLite2 City or Country database", path, unknown.DatabaseType)
		}
		return fmt.Errorf("cannot open GeoIP database %s: %w", path, err)
	}
	defer r.Close()
	// Country is supported by City and Country databases only. The probe
	// address is never a client's.
	if _, err := r.Country(netip.IPv4Unspecified()); err != nil {
		var invalid geoip2.InvalidMethodError
		if errors.As(err, &invalid) {
			return fmt.Errorf("cannot use GeoIP database %s: its type %q is not a GeoIP2/GeoLite2 City or Country database", path, invalid.DatabaseType)
		}
		return fmt.Errorf("cannot read GeoIP database %s: %w", path, err)
	}
	if got := r.Metadata(); got.DatabaseType != md.DatabaseType || got.BuildEpoch != md.BuildEpoch || got.NodeCount != md.NodeCount {
		return fmt.Errorf("cannot open GeoIP database %s: the file changed while it was being opened; try again", path)
	}
	return nil
}

// Close releases the database. It must not be called while lookups are in
// progress; later lookups return an empty Place. Closing a nil Geo is a
// no-op.
func (g *Geo) Close() error {
	if g == nil {
		return nil
	}
	return g.db.Close()
}

// DatabaseType returns the type recorded in the database, such as
// "GeoLite2-City", or "" for a nil Geo.
func (g *Geo) DatabaseType() string {
	if g == nil {
		return ""
	}
	return g.db.Metadata.DatabaseType
}

// BuildTime returns when the database was built, or the zero time for a
// nil Geo.
func (g *Geo) BuildTime() time.Time {
	if g == nil {
		return time.Time{}
	}
	return g.db.Metadata.BuildTime()
}

// Lookup returns the place of ip at precision p. It returns an empty Place
// for a nil Geo, the zero Addr, private, loopback, link-local and other
// non-global addresses, and addresses the database does not know.
// IPv4-mapped IPv6 addresses are looked up as IPv4.
//
// Lookup does not allocate once the record of ip is cached. Lookup errors
// are not reported: they can only mean a damaged database, and their text
// would contain the address.
func (g *Geo) Lookup(ip netip.Addr, p Precision) Place {
	if g == nil {
		return Place{}
	}
	ip = normalize(ip)
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return Place{}
	}
	if g.ipv4Only && !ip.Is4() {
		return Place{} // maxminddb would build an error quoting the address
	}
	key, slot := g.nets.slot(ip)
	if e := slot.Load(); e != nil && e.key == key {
		return e.place.fold(p)
	}
	res := g.db.Lookup(ip)
	var pl Place
	if res.Found() {
		off := res.Offset()
		var ok bool
		if pl, ok = g.cache.get(off); !ok {
			pl = decodePlace(res)
			g.cache.put(off, pl)
		}
	} else if res.Err() != nil {
		return Place{}
	}
	if n := res.Prefix(); n.IsValid() && n.Addr().Is4() == ip.Is4() && n.Bits() <= netBits(ip) {
		slot.Store(&netEntry{key: key, place: pl}) // the database's network holds the whole /24 or /48
	}
	return pl.fold(p)
}

// defaultNetCacheSize is the number of /24 and /48 networks netCache can
// hold: 16Ki slots of 8 bytes, each pointing at a 56-byte entry.
const defaultNetCacheSize = 1 << 14

// netCache maps a /24 (IPv4) or /48 (IPv6) network to its place. It is
// direct-mapped and lock-free: a lookup is one load and a compare, with no
// write to memory other cores read, and a network that takes a slot
// replaces whatever was there. It holds a network only when one database
// network covers all of it, so every address in it has that place.
type netCache struct {
	slots []atomic.Pointer[netEntry]
	shift uint
}

type netEntry struct {
	key   uint64 // as netCache.slot makes it: never 0
	place Place
}

func (c *netCache) init(size int) {
	n := 1
	for n < size {
		n *= 2
	}
	c.slots = make([]atomic.Pointer[netEntry], n)
	c.shift = uint(64 - bits.TrailingZeros(uint(n)))
}

// netBits is the prefix length of the network netCache keys ip by.
func netBits(ip netip.Addr) int {
	if ip.Is4() {
		return 24
	}
	return 48
}

// slot returns the key of ip's /24 or /48 and the slot it belongs in.
func (c *netCache) slot(ip netip.Addr) (uint64, *atomic.Pointer[netEntry]) {
	var key uint64
	if ip.Is4() {
		a := ip.As4()
		key = 1<<62 | uint64(a[0])<<16 | uint64(a[1])<<8 | uint64(a[2])
	} else {
		a := ip.As16()
		key = 1<<63 | binary.BigEndian.Uint64(a[:8])>>16
	}
	return key, &c.slots[(key*0x9E3779B97F4A7C15)>>c.shift]
}

// geoRecord holds the only fields Glimpse reads from a City or Country
// record; decoding skips everything else.
type geoRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names struct {
			English string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
}

// decodePlace decodes the record of res at full precision. A record that
// does not decode yields an empty Place, which is then cached like any
// other so a damaged record costs one decode, not one per request.
func decodePlace(res maxminddb.Result) Place {
	var rec geoRecord
	if err := res.Decode(&rec); err != nil {
		return Place{}
	}
	pl := Place{CountryCode: rec.Country.ISOCode, City: rec.City.Names.English}
	if pl.CountryCode != "" && len(rec.Subdivisions) > 0 && rec.Subdivisions[0].ISOCode != "" {
		pl.Region = pl.CountryCode + "-" + rec.Subdivisions[0].ISOCode
	}
	return pl
}

// defaultPlaceCacheSize bounds the decoded places kept per Geo. A Country
// database has a few hundred distinct records, so it fits entirely; a
// GeoLite2 City database has a few hundred thousand, of which real traffic
// touches a small, skewed subset. 64Ki entries cost about 8 MiB.
const defaultPlaceCacheSize = 1 << 16

const placeCacheShards = 16

// placeCache is a bounded map from record offset to decoded Place, sharded
// so concurrent readers rarely share a lock. When a shard is full, an
// arbitrary entry makes room: records are cheap to decode again, and hot
// ones come straight back.
type placeCache struct {
	shards [placeCacheShards]placeShard
}

type placeShard struct {
	mu  sync.RWMutex
	m   map[uintptr]Place
	max int
	_   [24]byte // pad to 64 bytes so shards do not share cache lines
}

func (c *placeCache) init(size int) {
	per := max(1, (size+placeCacheShards-1)/placeCacheShards)
	for i := range c.shards {
		c.shards[i].m = make(map[uintptr]Place)
		c.shards[i].max = per
	}
}

func (c *placeCache) shard(off uintptr) *placeShard {
	// Offsets are byte positions of variable-size records; mix them so
	// neighbouring records spread over shards.
	h := uint64(off) * 0x9E3779B97F4A7C15
	return &c.shards[h>>60]
}

func (c *placeCache) get(off uintptr) (Place, bool) {
	s := c.shard(off)
	s.mu.RLock()
	pl, ok := s.m[off]
	s.mu.RUnlock()
	return pl, ok
}

func (c *placeCache) put(off uintptr, pl Place) {
	s := c.shard(off)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[off]; !ok && len(s.m) >= s.max {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[off] = pl
}

func (c *placeCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
