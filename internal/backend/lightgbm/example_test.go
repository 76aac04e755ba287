package lightgbm_test

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/backend/lightgbm"
)

// A one-split regression model in LightGBM's text format.
const stump = `tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=0
objective=regression
feature_names=x
feature_infos=[0:1]

Tree=0
num_leaves=2
num_cat=0
split_feature=0
threshold=0.5
decision_type=2
left_child=-1
right_child=-2
leaf_value=-1 1
shrinkage=1


end of trees
`

func ExampleParse() {
	m, err := lightgbm.Parse([]byte(stump))
	if err != nil {
		fmt.Println(err)
		return
	}
	out := make([]float64, 3)
	m.Predict([]float32{0, 0.5, 0.75}, out)
	fmt.Println(m.Objective, m.NumFeature, out)
	// Output: regression 1 [-1 -1 1]
}
