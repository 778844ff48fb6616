// The key exchange groups mesh TLS offers: defined in core (the control plane's connections offer the
// same ones), re-exported here where the proxy's TLS code looks for them.
export { HYBRID_GROUP, MESH_ECDH_CURVE, MESH_GROUPS, groupSupported, negotiatedGroup } from '../../core/tls-groups.js';
