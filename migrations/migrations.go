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
