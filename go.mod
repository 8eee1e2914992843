module github.com/ssmirror/ssmirror

go 1.26
