module example.org/shapes/shapesrv/v2

go 1.19
