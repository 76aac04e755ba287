module github.com/shoal-ml/shoal

go 1.26.0
