-- POST args[1] as the body, of media type args[2] (JSON unless given); other headers from -H.
function init(args)
  wrk.method = "POST"
  wrk.body = args[1]
  wrk.headers["Content-Type"] = args[2] or "application/json"
end
