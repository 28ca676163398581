-- webdis: SETEX of a 300-byte value (PUT puts the last argument in the body).
wrk.method = "PUT"
wrk.path = "/SETEX/bench:webdis:setex/3600"
wrk.body = string.rep("v", 300)
