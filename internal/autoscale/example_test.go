package autoscale_test

import (
	"fmt"
	"time"

	"github.com/shoal-ml/shoal/internal/autoscale"
)

func ExampleDecide() {
	spec := autoscale.Spec{Target: 10, MaxReplicas: 20} // 10 requests in flight per replica
	if err := spec.Validate(); err != nil {
		panic(err)
	}
	var st autoscale.State
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	// A steady load of 35 requests in flight on 2 ready replicas for a minute.
	for i := range 60 {
		now = start.Add(time.Duration(i) * time.Second)
		st.Record(autoscale.Sample{Time: now, Load: 35, Ready: 2})
	}
	d := autoscale.Decide(now, spec, &st, autoscale.Inputs{Current: 2})
	fmt.Println(d)
	// Output: desired 4 (stable): stable load 35 / target 10 = 4
}
