// Package migrations holds Glimpse's ClickHouse schema as numbered,
// forward-only SQL files embedded in the binary, and the runner that applies
// them.
//
// Files are named NNNN_name.sql and never edited once landed; a change to
// the schema is a new file. Each file is a text/template rendered for one
// of two deployments:
//
//   - single server (the default): plain MergeTree-family tables;
//   - cluster (--cluster NAME): every statement gets ON CLUSTER NAME, each
//     table becomes a Replicated* table named <table>_local, and a
//     Distributed table under the plain name fronts it.
//
// Template functions: {{table "t"}} names the storage table, {{name "v"}}
// names any other object (a view, or the Distributed table in front of a
// storage table), {{onCluster}} adds the ON CLUSTER clause,
// {{engine "Family" "t" "args"}} renders the engine,
// {{distributed "t" "sharding key"}} renders the Distributed table and
// {{dropDistributed "t"}} drops it (both nothing on a single server).
// Three more render a modern schema on servers from ModernVersion on
// (Target.Version) and the 18.16 schema, unchanged, on older ones:
// {{lowCardinality "String"}} is LowCardinality(String) (use it for
// columns with few distinct values: sites, dimensions such as browser,
// country or channel, not paths, URLs or identifiers), {{codec "Delta,
// ZSTD"}} appends " CODEC(Delta, ZSTD)" to a column (timestamps: Delta or
// DoubleDelta in sort order; long strings: ZSTD), and {{ttl "expr"}}
// adds a TTL line after ORDER BY (only for a fixed retention that jobs
// also enforce: TTL deletes at merges, late). Column names and types
// as queries see them stay the same, so no query depends on the
// rendering.
//
// A database keeps the rendering it was created with: when the server is
// upgraded from 18.16 to a current release, the tables already there
// stay as they are, and the Runner renders later migrations for them in
// the 18.16 schema too (see Runner.Apply), so a migration may rely on
// one rendering throughout a database, never on the modern one.
//
// A statement that starts with {{eachShard}} runs on a cluster not ON
// CLUSTER but on one replica of each shard (an INSERT ... SELECT from one
// local table into another, and a mutation of a replicated table, which
// the other replicas of the shard repeat), one that starts with
// {{eachHost}} on every host (an ALTER of a Distributed table, which
// ClickHouse 18.16 refuses ON CLUSTER when shards replicate internally);
// both render nothing on a single server.
//
// On a cluster every name is qualified with the database: an ON CLUSTER
// statement runs in the `default` database on each host (ClickHouse 18.16),
// so an unqualified name there misses. On a single server names stay
// unqualified and the connection's database applies. A landed file may be
// edited only in ways that leave its single-server rendering byte for byte
// the same (TestSingleServerRenderingUnchanged); cluster rendering was
// fixed in place before any cluster applied it.
//
// Statements are separated by a semicolon at the end of a line. The SQL must
// run on ClickHouse 18.16.1 and on current releases (see CLICKHOUSE.md).
package migrations

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

//go:embed *.sql
var embedded embed.FS

// Files returns the embedded migration files.
func Files() fs.FS { return embedded }

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string // file name without the extension, e.g. "0001_events"
	text    string
}

var fileName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// Load reads and orders the migration files of fsys. Version numbers must be
// unique; a gap is allowed (a withdrawn number) but not a duplicate.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("cannot list migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name must look like 0001_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if v == 0 {
			return nil, fmt.Errorf("migration file %s: versions start at 0001", e.Name())
		}
		if other, ok := seen[v]; ok {
			return nil, fmt.Errorf("migration files %s and %s share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("cannot read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(e.Name(), ".sql"), text: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Target says what the statements are rendered for.
type Target struct {
	// Database is the database the tables live in; Distributed tables name it.
	Database string
	// Cluster, when set, renders ON CLUSTER, Replicated* engines and
	// Distributed tables for that cluster (defined in the servers'
	// remote_servers, with {shard} and {replica} macros).
	Cluster string
	// Version is the server's version (SELECT version(), e.g. "18.16.1"
	// or "25.8.3.1"). From ModernVersion on, {{lowCardinality}},
	// {{codec}} and {{ttl}} render the modern schema; empty, or older,
	// renders the 18.16 schema. The Runner fills it from the server.
	Version string
}

// ModernVersion is the first server version the modern rendering is for:
// LowCardinality columns, column codecs and table TTL. All three came
// during 19.x (codecs in 19.1 to 19.3, TTL in 19.6, LowCardinality then
// left allow_experimental_low_cardinality_type), and mixing
// LowCardinality(String) with String in one expression (if, arrays,
// UNION) found a common type only from 20.5; 21.8 is the first
// long-term-support release after those. Older servers get the 18.16
// rendering, which they run. Tested: 18.16 (live) and 26.x (chDB).
const ModernVersion = "21.8"

// Modern reports whether t renders the modern schema.
func (t Target) Modern() bool { return versionAtLeast(t.Version, ModernVersion) }

// versionAtLeast compares dotted versions numerically ("26.5.1.1" >=
// "20.3"); an empty or unparsable v is older than everything.
func versionAtLeast(v, min string) bool {
	if v == "" {
		return false
	}
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range b {
		if i >= len(a) {
			return false
		}
		x, err := strconv.Atoi(a[i])
		if err != nil {
			return false
		}
		y, _ := strconv.Atoi(b[i])
		if x != y {
			return x > y
		}
	}
	return true
}

// Statements renders m for t and splits it into single statements.
func (m Migration) Statements(t Target) ([]string, error) {
	return render(m.Name, m.text, t)
}

func render(name, text string, t Target) ([]string, error) {
	tmpl, err := template.New(name).Funcs(t.funcs()).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("migration %s: cannot parse template: %w", name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, t); err != nil {
		return nil, fmt.Errorf("migration %s: cannot render: %w", name, err)
	}
	return split(buf.String()), nil
}

func (t Target) funcs() template.FuncMap {
	local := func(table string) string {
		if t.Cluster == "" {
			return table
		}
		return table + "_local"
	}
	qualified := func(name string) string {
		if t.Cluster == "" {
			return name
		}
		return quoteIdent(t.Database) + "." + name
	}
	return template.FuncMap{
		"table": func(table string) string { return qualified(local(table)) },
		"name":  qualified,
		"eachShard": func() string {
			if t.Cluster == "" {
				return ""
			}
			return eachShardMark
		},
		"eachHost": func() string {
			if t.Cluster == "" {
				return ""
			}
			return eachHostMark
		},
		"onCluster": func() string {
			if t.Cluster == "" {
				return ""
			}
			return " ON CLUSTER " + quoteIdent(t.Cluster)
		},
		"engine": func(family, table string, args ...string) string {
			params := strings.Join(args, ", ")
			if t.Cluster == "" {
				return family + "(" + params + ")"
			}
			zk := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", t.Database, local(table))
			if params != "" {
				zk += ", " + params
			}
			return "Replicated" + family + "(" + zk + ")"
		},
		"lowCardinality": func(typ string) string {
			if !t.Modern() {
				return typ
			}
			return "LowCardinality(" + typ + ")"
		},
		"codec": func(codecs string) string {
			if !t.Modern() {
				return ""
			}
			return " CODEC(" + codecs + ")"
		},
		"ttl": func(expr string) string {
			if !t.Modern() {
				return ""
			}
			return "\nTTL " + expr
		},
		"dropDistributed": func(table string) string {
			if t.Cluster == "" {
				return ""
			}
			return fmt.Sprintf("DROP TABLE IF EXISTS %s ON CLUSTER %s;", qualified(table), quoteIdent(t.Cluster))
		},
		"distributed": func(table, key string) string {
			if t.Cluster == "" {
				return ""
			}
			return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s AS %s ENGINE = Distributed(%s, %s, %s, %s);",
				qualified(table), quoteIdent(t.Cluster), qualified(local(table)), quoteIdent(t.Cluster),
				quoteIdent(t.Database), local(table), key)
		},
	}
}

// The marks of statements that run on each shard or host rather than ON
// CLUSTER (see the package comment).
const (
	eachShardMark = "/* each shard */ "
	eachHostMark  = "/* each host */ "
)

// quoteIdent back-quotes a cluster or database name unless it is a plain identifier.
func quoteIdent(s string) string {
	if identRe.MatchString(s) {
		return s
	}
	return "`" + strings.ReplaceAll(s, "`", "\\`") + "`"
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// split cuts rendered SQL into statements at semicolons that end a line,
// dropping comment lines and empty statements.
func split(sql string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		if strings.HasSuffix(trimmed, ";") {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(line, " \t\r"), ";"))
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return out
}
