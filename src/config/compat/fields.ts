/**
 * The top-level fields of APISIX's own schemas (route and consumer schema) for
 * the plugins Turnpike has or is adding, read from apisix/plugins/*.lua. A
 * field listed here that Turnpike's schema for the plugin lacks is accepted
 * with a warning; a field in neither is an error with a suggestion.
 */
const REDIS = [
  'redis_host', 'redis_port', 'redis_username', 'redis_password', 'redis_database', 'redis_timeout', 'redis_ssl', 'redis_ssl_verify',
  'redis_cluster_nodes', 'redis_cluster_name', 'redis_cluster_ssl', 'redis_cluster_ssl_verify', 'redis_keepalive_timeout', 'redis_keepalive_pool',
];
const LOGGER = ['include_req_body', 'include_req_body_expr', 'include_resp_body', 'include_resp_body_expr', 'log_format', 'log_format_extra', 'max_req_body_bytes', 'max_resp_body_bytes'];
const BATCH = ['batch_max_size', 'inactive_timeout', 'buffer_duration', 'max_retry_count', 'retry_delay', 'name'];

export const APISIX_PLUGIN_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'key-auth': ['header', 'query', 'hide_credentials', 'realm', 'anonymous_consumer', 'key'],
  'mocking': ['delay', 'response_status', 'content_type', 'response_example', 'response_schema', 'with_mock_header', 'response_headers'],
  'proxy-rewrite': ['uri', 'method', 'regex_uri', 'host', 'headers', 'use_real_request_uri_unsafe'],
  'response-rewrite': ['status_code', 'body', 'body_base64', 'headers', 'vars', 'filters', 'max_resp_body_size'],
  'request-id': ['header_name', 'include_in_response', 'algorithm', 'range_id'],
  'serverless-pre-function': ['phase', 'functions'],
  'serverless-post-function': ['phase', 'functions'],
  'cors': ['allow_origins', 'allow_methods', 'allow_headers', 'expose_headers', 'max_age', 'allow_credential', 'allow_origins_by_regex', 'allow_origins_by_metadata', 'timing_allow_origins', 'timing_allow_origins_by_regex'],
  'ip-restriction': ['whitelist', 'blacklist', 'message', 'response_code'],
  'consumer-restriction': ['type', 'whitelist', 'blacklist', 'rejected_code', 'rejected_msg', 'allowed_by_methods'],
  'redirect': ['ret_code', 'uri', 'regex_uri', 'http_to_https', 'encode_uri', 'append_query_string'],
  'real-ip': ['source', 'trusted_addresses', 'recursive'],
  'client-control': ['max_body_size'],
  'limit-count': ['count', 'time_window', 'window_type', 'group', 'key', 'key_type', 'rejected_code', 'rejected_msg', 'policy', 'allow_degradation', 'show_limit_quota_header', 'limit_header', 'remaining_header', 'reset_header', 'sync_interval', 'rules', ...REDIS],
  'limit-req': ['rate', 'burst', 'key', 'key_type', 'rejected_code', 'rejected_msg', 'nodelay', 'allow_degradation', 'policy', ...REDIS],
  'limit-conn': ['conn', 'burst', 'default_conn_delay', 'only_use_default_delay', 'key', 'key_type', 'rejected_code', 'rejected_msg', 'allow_degradation', 'policy', 'rules', ...REDIS],
  'jwt-auth': ['header', 'query', 'cookie', 'hide_credentials', 'key_claim_name', 'store_in_ctx', 'anonymous_consumer', 'claims_to_verify', 'realm',
    'key', 'secret', 'public_key', 'algorithm', 'exp', 'base64_secret', 'lifetime_grace_period'],
  'basic-auth': ['hide_credentials', 'anonymous_consumer', 'realm', 'username', 'password'],
  'forward-auth': ['uri', 'allow_degradation', 'ssl_verify', 'request_method', 'request_headers', 'upstream_headers', 'client_headers', 'extra_headers', 'timeout', 'keepalive', 'keepalive_timeout', 'keepalive_pool', 'status_on_error', 'max_req_body_size'],
  'opa': ['host', 'ssl_verify', 'policy', 'timeout', 'keepalive', 'keepalive_timeout', 'keepalive_pool', 'with_route', 'with_service', 'with_consumer', 'send_headers_upstream'],
  'file-logger': ['path', 'match', ...LOGGER],
  'http-logger': ['uri', 'auth_header', 'timeout', 'ssl_verify', 'concat_method', ...LOGGER, ...BATCH],
  'openid-connect': ['client_id', 'client_secret', 'discovery', 'scope', 'ssl_verify', 'timeout', 'introspection_endpoint', 'introspection_endpoint_auth_method',
    'token_endpoint_auth_method', 'bearer_only', 'session', 'realm', 'claim_validator', 'logout_path', 'redirect_uri', 'post_logout_redirect_uri', 'unauth_action',
    'public_key', 'use_jwks', 'token_signing_alg_values_expected', 'use_pkce', 'par', 'dpop', 'set_access_token_header', 'access_token_in_authorization_header',
    'set_id_token_header', 'set_raw_id_token_header', 'set_userinfo_header', 'set_refresh_token_header', 'proxy_opts', 'authorization_params', 'client_rsa_private_key',
    'client_rsa_private_key_id', 'client_jwt_assertion_expires_in', 'client_jwt_assertion_alg', 'client_jwt_assertion_audience', 'renew_access_token_on_expiry',
    'access_token_expires_in', 'refresh_session_interval', 'iat_slack', 'accept_none_alg', 'accept_unsupported_alg', 'access_token_expires_leeway', 'force_reauthorize',
    'use_nonce', 'revoke_tokens_on_logout', 'jwk_expires_in', 'jwt_verification_cache_ignore', 'cache_segment', 'introspection_interval', 'introspection_expiry_claim',
    'introspection_addon_headers', 'required_scopes', 'claim_schema', 'session_contents'],
};

/**
 * APISIX fields that are never dropped with a warning even when Turnpike lacks
 * them: ignoring them would let through what the file means to refuse (more
 * requests per window, other consumers), or they read a plugin_metadata entry
 * Turnpike's plugin does not take. They stay errors until implemented.
 */
export const APISIX_FIELDS_TO_HONOUR: Readonly<Record<string, readonly string[]>> = {
  'limit-count': ['rules', 'group'],
  'limit-conn': ['rules'],
  'consumer-restriction': ['type', 'allowed_by_methods'],
  'cors': ['allow_origins_by_metadata'],
  'openid-connect': ['claim_schema'],
};

/**
 * Every plugin name APISIX ships (apisix/plugins/*.lua): a file naming one
 * Turnpike lacks is told the plugin is not available yet, not that it is
 * unknown, which reads as a typo.
 */
export const APISIX_PLUGINS: ReadonlySet<string> = new Set(`acl ai-aliyun-content-moderation ai-aws-content-moderation ai-cache ai-lakera-guard
ai-prompt-decorator ai-prompt-guard ai-prompt-template ai-proxy-multi ai-proxy ai-rag ai-rate-limiting ai-request-rewrite api-breaker
attach-consumer-label authz-casbin authz-casdoor authz-keycloak aws-lambda azure-functions basic-auth batch-requests body-transformer brotli
cas-auth chaitin-waf clickhouse-logger client-control consumer-restriction cors csrf data-mask datadog degraphql dingtalk-auth dubbo-proxy echo
elasticsearch-logger error-log-logger error-page example-plugin exit-transformer ext-plugin-post-req ext-plugin-post-resp ext-plugin-pre-req
fault-injection feishu-auth file-logger forward-auth gm google-cloud-logging graphql-limit-count graphql-proxy-cache grpc-transcode grpc-web gzip
hmac-auth http-dubbo http-logger inspect ip-restriction jwe-decrypt jwt-auth kafka-logger kafka-proxy key-auth lago ldap-auth mcp-bridge
limit-conn limit-count limit-req log-rotate loggly loki-logger mocking multi-auth node-status oas-validator ocsp-stapling opa openfunction
openid-connect opentelemetry openwhisk prometheus proxy-buffering proxy-cache proxy-control proxy-mirror proxy-rewrite public-api real-ip redirect
referer-restriction request-id request-validation response-rewrite rocketmq-logger saml-auth server-info serverless-post-function
serverless-pre-function skywalking-logger skywalking sls-logger splunk-hec-logging syslog tcp-logger tencent-cloud-cls traffic-label
traffic-split ua-restriction udp-logger uri-blocker wolf-rbac workflow zipkin`.split(/\s+/));
