{
  "targets": [
    {
      "target_name": "origdst",
      "sources": ["origdst.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-Werror=implicit-function-declaration"]
    }
  ]
}
