<?php
// kunci agent client for PHP: the curl extension over the agent's Unix socket.
// `php client.php PROFILE` prints one JSON line; the functions are what an application copies.

function kunci_agent_request(string $method, string $path, ?string $body = null, string $accept = 'application/json'): string
{
    $socket = getenv('KUNCI_AGENT') ?: getenv('XDG_RUNTIME_DIR') . '/kunci/agent.sock';
    $ch = curl_init('http://localhost' . $path);
    curl_setopt_array($ch, [
        CURLOPT_UNIX_SOCKET_PATH => $socket,
        CURLOPT_CUSTOMREQUEST => $method,
        CURLOPT_HTTPHEADER => ['Accept: ' . $accept],
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => 40,
    ]);
    if ($body !== null) {
        curl_setopt($ch, CURLOPT_POSTFIELDS, $body);
    }
    $text = curl_exec($ch);
    if ($text === false) {
        throw new RuntimeException('kunci agent unreachable: ' . curl_error($ch));
    }
    $status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
    if ($status !== 200) {
        $error = json_decode($text, true);
        // $error['error']: configuration, reauthenticate, rate_limited (see $error['until']),
        // unavailable or protocol; $error['exit_code'] is the kunci CLI's exit code.
        throw new RuntimeException("kunci agent: {$error['error']}: {$error['message']}", $error['exit_code']);
    }
    return $text;
}

/** The token of a profile (cached and refreshed by the agent). */
function kunci_token(string $profile): string
{
    return json_decode(kunci_agent_request('GET', '/v1/token/' . rawurlencode($profile)), true)['token'];
}

/** The ready-made Authorization value: "Bearer <token>" (or "Token <token>"). */
function kunci_header(string $profile): string
{
    return kunci_agent_request('GET', '/v1/header/' . rawurlencode($profile), null, 'text/plain');
}

/** After the API answered 401 for $token: one refresh, however many workers report it. */
function kunci_invalidate(string $profile, string $token): bool
{
    $answer = kunci_agent_request('POST', '/v1/invalidate/' . rawurlencode($profile), $token);
    return json_decode($answer, true)['invalidated'];
}

$profile = $argv[1] ?? 'stamps';
$token = kunci_token($profile);
$header = kunci_header($profile);
$invalidated = kunci_invalidate($profile, $token);
echo json_encode(['token' => $token, 'header' => $header, 'invalidated' => $invalidated, 'after' => kunci_token($profile)]), "\n";
