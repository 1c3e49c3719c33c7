package main

import (
	"math"
	"testing"
)

func TestMedianInterval(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v        []float64
		min, max float64 // the interval must lie within these
		width    float64 // and be at least this wide
	}{
		{"constant", []float64{1.1, 1.1, 1.1, 1.1}, 1.1, 1.1, 0},
		{"one round", []float64{0.9}, 0.9, 0.9, 0},
		{"spread", []float64{0.8, 0.9, 1.0, 1.1, 1.2, 0.95, 1.05, 0.85, 1.15, 1.0}, 0.8, 1.2, 0.05},
		{"all above one", []float64{1.10, 1.12, 1.08, 1.15, 1.11, 1.09, 1.13, 1.10, 1.12, 1.14}, 1.08, 1.15, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := medianInterval(tc.v)
			med := medianFloat(tc.v)
			if lo > med || hi < med {
				t.Errorf("interval [%v, %v] does not hold the median %v", lo, hi, med)
			}
			if lo < tc.min || hi > tc.max {
				t.Errorf("interval [%v, %v] outside the data's range [%v, %v]", lo, hi, tc.min, tc.max)
			}
			if hi-lo < tc.width {
				t.Errorf("interval [%v, %v] narrower than %v", lo, hi, tc.width)
			}
			if lo2, hi2 := medianInterval(tc.v); lo2 != lo || hi2 != hi {
				t.Errorf("a second call gave [%v, %v], not [%v, %v]: the seed is not fixed", lo2, hi2, lo, hi)
			}
		})
	}
	if lo, hi := medianInterval(nil); !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Errorf("medianInterval(nil) = %v, %v; want NaN", lo, hi)
	}
}
