{
  "targets": [
    {
      "target_name": "origdst",
      "sources": ["origdst.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
