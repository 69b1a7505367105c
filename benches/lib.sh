# Shell helpers shared by the benchmark scripts (sourced, not run).

# Prints a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 5 minutes for 127.0.0.1:$1 to accept connections.
wait_port() {
    for _ in $(seq 1 3000); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2; return 1
}
