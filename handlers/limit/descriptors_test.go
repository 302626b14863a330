package limit

import "testing"

func TestPlanDescriptors(t *testing.T) {
	for _, limit := range []int{128, 200, 1024, 20_000, 1 << 20} {
		d := PlanDescriptors(limit)
		if d.Streams+d.Requests+32 > limit || d.Streams < limit/3 {
			t.Errorf("limit %d: %d streams + %d requests leave no reserve of 32, or too few streams", limit, d.Streams, d.Requests)
		}
	}
	if d := PlanDescriptors(20_000); d.Streams < 19_000 {
		t.Errorf("20,000 descriptors give %d streams: 19,000 must fit", d.Streams)
	}
}
