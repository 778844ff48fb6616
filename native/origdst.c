/*
 * origdst: reads the original destination of a connection that iptables REDIRECTed (or DNATed)
 * to the proxy, with getsockopt(SO_ORIGINAL_DST) for IPv4 and IP6T_SO_ORIGINAL_DST for IPv6.
 * Node has no API for this; it is the one piece of the proxy that must be native.
 *
 * getOriginalDst(fd: number): { address: string, port: number, family: 4 | 6 }
 * Throws an Error with .code = errno name ("ENOENT" when the connection was not redirected).
 *
 * What the kernel answers (seen in test/netns-origdst.test.ts): for a redirected connection, the
 * address the client asked for. For a connection that was not NATed but is tracked by conntrack (the
 * namespace has a nat table), the proxy's own address: listen.ts calls that a loop. For an untracked
 * connection (no conntrack in the namespace, or NOTRACK rules), ENOENT.
 *
 * listenInNetns(nsPath: string, address: string, port: number, backlog: number): number
 * A TCP listening socket opened in another network namespace (the per-host data plane's listeners
 * inside each pod, src/runtime/dataplane/): setns on the calling thread, socket/bind/listen, setns back.
 * A socket belongs for life to the namespace it was created in, so the fd, handed to a proxy in the
 * host's namespace, accepts the pod's redirected connections and SO_ORIGINAL_DST answers from the pod's
 * conntrack. Needs CAP_SYS_ADMIN (the runtime, root). Throws an Error with .code = errno name.
 *
 * socketInNetns(nsPath: string, family: 4 | 6): number
 * An unconnected TCP socket created in another network namespace, for the node proxy to connect to a
 * pod's app from inside the pod (as a sidecar does): the connection never leaves the pod's namespace,
 * and the socket's owner (the proxy's uid) is what the pod's rules let through. Needs CAP_SYS_ADMIN.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netfilter_ipv4.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

/* glibc declares setns only with _GNU_SOURCE, which must come before the first header; declared here. */
extern int setns(int fd, int nstype);
#ifndef CLONE_NEWNET
#define CLONE_NEWNET 0x40000000
#endif

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
    case ENOTCONN: return "ENOTCONN";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENOMEM: return "ENOMEM";
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

/*
 * conntrack looks the socket's tuple up in either direction and answers with the ORIGINAL direction's
 * destination. When the entry was started by the proxy's side (the client's packets NOTRACKed but not
 * the proxy's, then picked up mid-stream by nf_conntrack_tcp_loose from the proxy's ACK), that
 * "original destination" is the client itself: not a redirect (test/netns-origdst.test.ts, 127.0.0.3).
 */
static int is_peer(int fd, const struct sockaddr *dst) {
  struct sockaddr_storage peer;
  socklen_t len = sizeof peer;
  if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0) return 0;
  if (dst->sa_family == AF_INET) {
    const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
    if (peer.ss_family == AF_INET) {
      const struct sockaddr_in *p = (const struct sockaddr_in *)&peer;
      return p->sin_port == d->sin_port && p->sin_addr.s_addr == d->sin_addr.s_addr;
    }
    if (peer.ss_family == AF_INET6) { /* v4 client on a dual-stack socket: ::ffff:a.b.c.d */
      const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&peer;
      return p->sin6_port == d->sin_port && IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) &&
             memcmp(&p->sin6_addr.s6_addr[12], &d->sin_addr, 4) == 0;
    }
    return 0;
  }
  if (dst->sa_family == AF_INET6 && peer.ss_family == AF_INET6) {
    const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst, *p = (const struct sockaddr_in6 *)&peer;
    return p->sin6_port == d->sin6_port && memcmp(&p->sin6_addr, &d->sin6_addr, sizeof d->sin6_addr) == 0;
  }
  return 0;
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

  /* Room for an IPv6 address, "%" and an interface name (link-local destinations carry a scope). */
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
  struct sockaddr_in dst4;
  socklen_t d4len = sizeof dst4;
  memset(&dst4, 0, sizeof dst4);
  if (local.ss_family == AF_INET) {
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst4, &d4len) != 0) return throw_errno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
  } else if (local.ss_family == AF_INET6) {
    struct sockaddr_in6 dst;
    socklen_t dlen = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr)) {
      /* A v4 client on a dual-stack socket is tracked by the v4 table only. */
      if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst4, &d4len) != 0) return throw_errno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
    } else {
      if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dlen) != 0) return throw_errno(env, errno, "getsockopt(IP6T_SO_ORIGINAL_DST)");
      if (is_peer(fd, (struct sockaddr *)&dst)) return throw_errno(env, ENOENT, "getsockopt(IP6T_SO_ORIGINAL_DST) answered the client's own address");
      if (!inet_ntop(AF_INET6, &dst.sin6_addr, text, INET6_ADDRSTRLEN)) return throw_errno(env, errno, "inet_ntop");
      char ifname[IF_NAMESIZE];
      if (dst.sin6_scope_id != 0 && if_indextoname(dst.sin6_scope_id, ifname)) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "%%%s", ifname);
      }
      return make_result(env, text, ntohs(dst.sin6_port), 6);
    }
  } else {
    return throw_errno(env, EAFNOSUPPORT, "getOriginalDst");
  }
  if (is_peer(fd, (struct sockaddr *)&dst4)) return throw_errno(env, ENOENT, "getsockopt(SO_ORIGINAL_DST) answered the client's own address");
  if (!inet_ntop(AF_INET, &dst4.sin_addr, text, sizeof text)) return throw_errno(env, errno, "inet_ntop");
  return make_result(env, text, ntohs(dst4.sin_port), 4);
}

/* Runs `make` (socket creation) in the network namespace at `path`, on the calling thread, and comes
 * back. Returns the fd, or -1 with *err and *what set. */
typedef int (*netns_op)(void *arg, int *err, const char **what);

static int in_netns(const char *path, netns_op op, void *arg, int *err, const char **what) {
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *err = errno;
    *what = "open(namespace)";
    return -1;
  }
  /* The calling thread's own namespace, to come back to (the thread's, not the process's: they differ
   * only while a thread is between the two setns calls). */
  int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (own < 0) {
    *err = errno;
    *what = "open(own namespace)";
    close(target);
    return -1;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    *err = errno;
    *what = "setns";
    close(target);
    close(own);
    return -1;
  }
  close(target);
  int fd = op(arg, err, what);
  /* Back home; a thread left in the pod's namespace would open every later socket there: fatal. */
  if (setns(own, CLONE_NEWNET) != 0) abort();
  close(own);
  return fd;
}

struct listen_args {
  struct sockaddr_storage sa;
  socklen_t salen;
  int backlog;
  /* The uid that owns the socket (-1: the caller's): only sockets of the same owner may bind beside it
   * with SO_REUSEPORT, so a pod's listeners made for the proxy uid cannot be shared by a root app. */
  int owner;
};

static int do_listen(void *arg, int *err, const char **what) {
  struct listen_args *a = arg;
  /* A socket's owner is the creating thread's fsuid: set for this one call on this thread only (the raw
   * system call, not a libc wrapper that might change every thread), and put back at once. */
  int saved = -1;
  if (a->owner >= 0) saved = (int)syscall(SYS_setfsuid, (uid_t)a->owner);
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int socket_errno = errno;
  if (a->owner >= 0) syscall(SYS_setfsuid, (uid_t)saved);
  if (fd < 0) {
    *err = socket_errno;
    *what = "socket";
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* A pod's listeners are handed over from one node proxy to the next (a resumed runtime starts new
   * ones while the old still serve): the new socket binds beside the old, and the kernel spreads new
   * connections over both until the old one closes. Only sockets of the same uid (root's) may share. */
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a->sa, a->salen) != 0) {
    *err = errno;
    *what = "bind";
    close(fd);
    return -1;
  }
  if (listen(fd, a->backlog) != 0) {
    *err = errno;
    *what = "listen";
    close(fd);
    return -1;
  }
  return fd;
}

static int do_socket(void *arg, int *err, const char **what) {
  int fd = socket(*(int *)arg, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    *what = "socket";
  }
  return fd;
}

static napi_value netns_error(napi_env env, const char *fn, int err, const char *what) {
  char msg[96];
  snprintf(msg, sizeof msg, "%s: %s", fn, what);
  return throw_errno(env, err, msg);
}

static napi_value listen_in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  char path[4096], host[INET6_ADDRSTRLEN];
  size_t plen = 0, hlen = 0;
  int32_t port = -1, backlog = 511, owner = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok || plen == 0 ||
      napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hlen) != napi_ok || hlen == 0 ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || port < 0 || port > 65535 ||
      (argc > 3 && napi_get_value_int32(env, argv[3], &backlog) != napi_ok) ||
      (argc > 4 && (napi_get_value_int32(env, argv[4], &owner) != napi_ok || owner < -1))) {
    napi_throw_type_error(env, "EINVAL", "listenInNetns: expected (nsPath, address, port 0-65535[, backlog[, ownerUid]])");
    return NULL;
  }
  struct listen_args a;
  memset(&a, 0, sizeof a);
  a.backlog = backlog;
  a.owner = owner;
  if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&a.sa)->sin_addr) == 1) {
    ((struct sockaddr_in *)&a.sa)->sin_family = AF_INET;
    ((struct sockaddr_in *)&a.sa)->sin_port = htons((uint16_t)port);
    a.salen = sizeof(struct sockaddr_in);
  } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&a.sa)->sin6_addr) == 1) {
    ((struct sockaddr_in6 *)&a.sa)->sin6_family = AF_INET6;
    ((struct sockaddr_in6 *)&a.sa)->sin6_port = htons((uint16_t)port);
    a.salen = sizeof(struct sockaddr_in6);
  } else {
    return throw_errno(env, EINVAL, "listenInNetns: not an IP address");
  }
  int err = 0;
  const char *what = "";
  int fd = in_netns(path, do_listen, &a, &err, &what);
  if (fd < 0) return netns_error(env, "listenInNetns", err, what);
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

static napi_value socket_in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[4096];
  size_t plen = 0;
  int32_t family = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok || plen == 0 ||
      napi_get_value_int32(env, argv[1], &family) != napi_ok || (family != 4 && family != 6)) {
    napi_throw_type_error(env, "EINVAL", "socketInNetns: expected (nsPath, family 4 | 6)");
    return NULL;
  }
  int af = family == 4 ? AF_INET : AF_INET6;
  int err = 0;
  const char *what = "";
  int fd = in_netns(path, do_socket, &af, &err, &what);
  if (fd < 0) return netns_error(env, "socketInNetns", err, what);
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "listenInNetns", NAPI_AUTO_LENGTH, listen_in_netns, NULL, &fn);
  napi_set_named_property(env, exports, "listenInNetns", fn);
  napi_create_function(env, "socketInNetns", NAPI_AUTO_LENGTH, socket_in_netns, NULL, &fn);
  napi_set_named_property(env, exports, "socketInNetns", fn);
  napi_create_function(env, "getOriginalDst", NAPI_AUTO_LENGTH, get_original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "getOriginalDst", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
