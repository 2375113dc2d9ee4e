module github.com/keyrotor/keyrotor/go

go 1.24
