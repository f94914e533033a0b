package dashboards

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/csvcell"
)

// csv answers a panel's rows as a CSV download: the same parameters as
// the JSON endpoint named by endpoint= (breakdown or timeseries), one
// column for the key (the property's, or date) and one per metric in the
// order asked for; under compare, each metric followed by its comparison
// and change (<metric>_comparison, <metric>_change; a time series also
// has the comparison bucket's comparison_date).
func (d *Dashboard) csv(c *fasthttp.RequestCtx) {
	endpoint := string(c.QueryArgs().Peek("endpoint"))
	fail := func(status int, msg string) {
		c.Response.Header.Set("Cache-Control", "no-store")
		c.SetContentType("application/json")
		c.SetStatusCode(status)
		b, _ := json.Marshal(map[string]string{"error": msg})
		c.SetBody(b)
	}
	if endpoint != api.EndpointBreakdown && endpoint != api.EndpointTimeseries && endpoint != api.EndpointFunnel {
		fail(fasthttp.StatusBadRequest, "endpoint must be breakdown, timeseries or funnel")
		return
	}
	res, err := d.opts.Stats.Run(c, endpoint, d.authorize)
	if err != nil {
		status, msg := d.opts.Stats.StatusOf(c, err)
		fail(status, msg)
		return
	}
	r := res.(*aggregator.Response)
	if endpoint == api.EndpointFunnel {
		funnelCSV(c, r) // funnels.go
		return
	}
	rows, _ := r.Results.([]map[string]any)
	metrics := strings.Split(string(c.QueryArgs().Peek("metrics")), ",")
	if metrics[0] == "" {
		metrics = []string{"visitors"}
	}
	key := "date"
	if endpoint == api.EndpointBreakdown {
		p, _ := aggregator.ParseProperty(string(c.QueryArgs().Peek("property")))
		key = p.Key
	}
	for i := range metrics {
		metrics[i] = strings.TrimSpace(metrics[i])
	}
	// Under compare each metric has its comparison and change beside it
	// (and a time series point the comparison bucket's date).
	comparing := r.Meta.Comparison != nil
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	header := []string{csvcell.Text(key)}
	if comparing && endpoint == api.EndpointTimeseries {
		header = append(header, "comparison_date")
	}
	for _, m := range metrics {
		header = append(header, csvcell.Text(m))
		if comparing {
			header = append(header, csvcell.Text(m+"_comparison"), csvcell.Text(m+"_change"))
		}
	}
	_ = w.Write(header)
	for _, row := range rows {
		rec := []string{cell(row[key])}
		cmp, _ := row["comparison"].(map[string]any)
		change, _ := row["change"].(map[string]any)
		if comparing && endpoint == api.EndpointTimeseries {
			rec = append(rec, cell(cmp["date"]))
		}
		for _, m := range metrics {
			rec = append(rec, cell(row[m]))
			if comparing {
				rec = append(rec, cell(cmp[m]), cell(change[m]))
			}
		}
		_ = w.Write(rec)
	}
	w.Flush()
	name := fmt.Sprintf("%s-%s-%s.csv", c.QueryArgs().Peek("site_id"), key, c.QueryArgs().Peek("period"))
	c.Response.Header.Set("Cache-Control", "no-store")
	c.Response.Header.Set("Content-Disposition", `attachment; filename="`+fileName(name)+`"`)
	c.SetContentType("text/csv; charset=utf-8")
	c.SetBody(b.Bytes())
}

// cell renders a value; text that a spreadsheet would run as a formula
// gets a leading apostrophe (visitors supply paths and properties).
func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return csvcell.Text(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case aggregator.Money:
		return moneyCell(v)
	}
	return fmt.Sprint(v)
}

// moneyCell writes a revenue value as its amount and currency code
// ("1234.5 EUR"), one per currency joined by "; " (currencies are never
// added); no revenue is "0".
func moneyCell(m aggregator.Money) string {
	each := m.ByCurrency
	if len(each) == 0 && m.Currency != nil {
		each = []aggregator.Money{m}
	}
	if len(each) == 0 {
		return "0"
	}
	parts := make([]string, 0, len(each))
	for _, x := range each {
		if x.Value == nil || x.Currency == nil {
			continue
		}
		s := strconv.FormatFloat(*x.Value, 'f', -1, 64) + " " + *x.Currency
		if x.Capped {
			s += " (capped)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileName(s string) string { return unsafeName.ReplaceAllString(s, "_") }
