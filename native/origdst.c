/*
 * origdst: reads the original destination of a connection that iptables REDIRECTed (or DNATed)
 * to the proxy, with getsockopt(SO_ORIGINAL_DST) for IPv4 and IP6T_SO_ORIGINAL_DST for IPv6.
 * Node has no API for this; it is the one piece of the proxy that must be native.
 *
 * getOriginalDst(fd: number): { address: string, port: number, family: 4 | 6 }
 * Throws an Error with .code = errno name ("ENOENT" when the connection was not redirected).
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netfilter_ipv4.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h; its header does not build in C++-free userland */
#endif

static const char *errno_name(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EINVAL: return "EINVAL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, int e, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_value code, message, error;
  napi_create_string_utf8(env, errno_name(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_throw(env, error);
  return NULL;
}

static napi_value make_result(napi_env env, const char *addr, int port, int family) {
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, addr, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "address", v);
  napi_create_int32(env, port, &v);
  napi_set_named_property(env, obj, "port", v);
  napi_create_int32(env, family, &v);
  napi_set_named_property(env, obj, "family", v);
  return obj;
}

static napi_value get_original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "getOriginalDst: expected a file descriptor (non-negative integer)");
    return NULL;
  }

  /* Which family is the socket itself? A v4 socket asks SOL_IP, a v6 one SOL_IPV6. */
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return throw_errno(env, errno, "getsockname");

  char text[INET6_ADDRSTRLEN];
  if (local.ss_family == AF_INET) {
    struct sockaddr_in dst;
    socklen_t dlen = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen) != 0) return throw_errno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
    inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text);
    return make_result(env, text, ntohs(dst.sin_port), 4);
  }
  if (local.ss_family == AF_INET6) {
    struct sockaddr_in6 dst;
    socklen_t dlen = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dlen) != 0) {
      /* A v4 client on a dual-stack socket is tracked by the v4 table. */
      int e = errno;
      struct sockaddr_in dst4;
      socklen_t d4len = sizeof dst4;
      if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst4, &d4len) == 0) {
        inet_ntop(AF_INET, &dst4.sin_addr, text, sizeof text);
        return make_result(env, text, ntohs(dst4.sin_port), 4);
      }
      return throw_errno(env, e, "getsockopt(IP6T_SO_ORIGINAL_DST)");
    }
    inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof text);
    return make_result(env, text, ntohs(dst.sin6_port), 6);
  }
  return throw_errno(env, EAFNOSUPPORT, "getOriginalDst");
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "getOriginalDst", NAPI_AUTO_LENGTH, get_original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "getOriginalDst", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
