//go:build race

package noise

// nSamples is the number of draws per scale in the distribution tests.
// The race detector makes a draw about ten times slower; 50,000 still
// fails every broken sampler tried (see the commit that added the
// tests), though with fewer scales for the subtle ones.
const nSamples = 50_000
