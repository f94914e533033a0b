package dashboards

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/internal/csvcell"
)

// funnelCSV writes a funnel answer (the csv endpoint with
// endpoint=funnel and the funnel endpoint's parameters) as one row per
// step: step, name, visitors, conversion_rate (% of step 1),
// step_conversion_rate (% of the previous step), dropoff. A withheld
// step has empty numbers and its reason in withheld.
func funnelCSV(c *fasthttp.RequestCtx, r *aggregator.Response) {
	res := r.Results.(*aggregator.FunnelResult)
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"step", "name", "visitors", "conversion_rate", "step_conversion_rate", "dropoff", "withheld"})
	num := func(p *int64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatInt(*p, 10)
	}
	rate := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'f', -1, 64)
	}
	for _, s := range res.Steps {
		_ = w.Write([]string{strconv.Itoa(s.Step), csvcell.Text(s.Name), num(s.Visitors), rate(s.ConversionRate),
			rate(s.StepConversionRate), num(s.Dropoff), csvcell.Text(s.Withheld)})
	}
	w.Flush()
	name := fmt.Sprintf("%s-funnel-%s-%s.csv", c.QueryArgs().Peek("site_id"), res.Name, c.QueryArgs().Peek("period"))
	c.Response.Header.Set("Cache-Control", "no-store")
	c.Response.Header.Set("Content-Disposition", `attachment; filename="`+fileName(name)+`"`)
	c.SetContentType("text/csv; charset=utf-8")
	c.SetBody(b.Bytes())
}
