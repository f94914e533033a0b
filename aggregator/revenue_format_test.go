package aggregator

import (
	"encoding/json"
	"testing"
)

// TestMoney: Plausible v2's money objects, per currency.
func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		v    map[string]float64
		avg  bool
		want string
	}{
		{map[string]float64{}, false, `{"value":0,"currency":null,"short":"0","long":"0"}`},
		{map[string]float64{"rev_s:EUR": 1234.5e6, "rev_n:EUR": 3}, false, `{"value":1234.5,"currency":"EUR","short":"€1.2K","long":"€1,234.50"}`},
		{map[string]float64{"rev_s:EUR": 1234.5e6, "rev_n:EUR": 3}, true, `{"value":411.5,"currency":"EUR","short":"€411.5","long":"€411.50"}`},
		{map[string]float64{"rev_s:JPY": 1234567e6, "rev_n:JPY": 1}, false, `{"value":1234567,"currency":"JPY","short":"¥1.2M","long":"¥1,234,567"}`},
		{map[string]float64{"rev_s:CHF": 12.5e6, "rev_n:CHF": 1}, false, `{"value":12.5,"currency":"CHF","short":"CHF 12.5","long":"CHF 12.50"}`},
		{map[string]float64{"rev_s:USD": 5e6, "rev_n:USD": 1, "rev_s:EUR": 7e6, "rev_n:EUR": 2}, false,
			`{"value":null,"currency":null,"short":"—","long":"—","by_currency":[` +
				`{"value":7,"currency":"EUR","short":"€7","long":"€7.00"},{"value":5,"currency":"USD","short":"$5","long":"$5.00"}]}`},
	} {
		b, _ := json.Marshal(revenueValue(tc.avg)(tc.v))
		if string(b) != tc.want {
			t.Errorf("%v (average %v):\n got %s\nwant %s", tc.v, tc.avg, b, tc.want)
		}
	}
}
