module cloudnative-journey/tests/node/pause

go 1.24
