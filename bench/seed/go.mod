module ward.bench/seed

go 1.19
