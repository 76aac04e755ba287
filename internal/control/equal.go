package control

import (
	"encoding/json"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/gateway"
)

func tablesEqual(a, b *gateway.Table) bool { return jsonEqual(a, b) }

func jsonEqualStatus(a, b v1alpha1.ModelDeploymentStatus) bool { return jsonEqual(a, b) }

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
