-- wrk script: POST /calculate with a fixed JSON body (keep-alive).
wrk.method = "POST"
wrk.body = '{"wealth":10000,"nisab":5000}'
wrk.headers["Content-Type"] = "application/json"
