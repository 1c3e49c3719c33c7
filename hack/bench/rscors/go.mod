module github.com/corsmesh/corsmesh/hack/bench/rscors

go 1.26.8

require github.com/rs/cors v1.11.1
