/* A minimal threaded libfcgi responder: the C baseline of the benchmarks.
 *
 * Usage: hello SOCKET_PATH [THREADS]
 * Each thread runs its own FCGX_Accept_r loop on the shared listening socket, so it serves one
 * connection at a time: with nginx's keep-alive pool it needs one thread per pooled connection.
 * Paths ending in /large answer 64 KiB, /echo sends the request body back, anything else
 * answers "Hello, World!".
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 256       /* bounds the thread array; nginx pools are far smaller */
#define LARGE_SIZE 65536      /* the "64 KiB response" scenario */
#define ECHO_CHUNK 65536      /* the echo buffer's first size; it doubles as needed */

static int listen_fd;
static char large_body[LARGE_SIZE];

static int ends_with(const char *text, const char *suffix) {
    size_t n = strlen(text), m = strlen(suffix);
    return n >= m && strcmp(text + n - m, suffix) == 0;
}

/* Reads the whole body before answering: nginx reads no response before it has sent the whole
 * request, so echoing while reading deadlocks once the socket buffers fill. */
static void answer_echo(FCGX_Request *req) {
    size_t size = 0, capacity = ECHO_CHUNK;
    char *body = malloc(capacity);
    int n;
    while (body != NULL && (n = FCGX_GetStr(body + size, (int)(capacity - size), req->in)) > 0) {
        size += (size_t)n;
        if (size == capacity)
            body = realloc(body, capacity *= 2);
    }
    if (body == NULL) {
        FCGX_PutS("Status: 500\r\n\r\n", req->out);
        return;
    }
    FCGX_FPrintF(req->out, "Content-Type: application/octet-stream\r\nContent-Length: %ld\r\n\r\n",
                 (long)size);
    FCGX_PutStr(body, (int)size, req->out);
    free(body);
}

static void answer(FCGX_Request *req) {
    const char *uri = FCGX_GetParam("DOCUMENT_URI", req->envp);
    if (uri == NULL)
        uri = "";
    if (ends_with(uri, "/echo")) {
        answer_echo(req);
    } else if (ends_with(uri, "/large")) {
        FCGX_FPrintF(req->out, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
                     LARGE_SIZE);
        FCGX_PutStr(large_body, LARGE_SIZE, req->out);
    } else {
        FCGX_PutS("Content-Type: text/plain\r\n\r\nHello, World!", req->out);
    }
}

static void *serve(void *unused) {
    FCGX_Request req;
    (void)unused;
    FCGX_InitRequest(&req, listen_fd, 0);
    while (FCGX_Accept_r(&req) >= 0) {
        answer(&req);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

int main(int argc, char **argv) {
    pthread_t threads[MAX_THREADS];
    int count = argc > 2 ? atoi(argv[2]) : 1;
    if (argc < 2 || count < 1 || count > MAX_THREADS) {
        fprintf(stderr, "usage: %s SOCKET_PATH [THREADS 1..%d]\n", argv[0], MAX_THREADS);
        return 2;
    }
    memset(large_body, 'x', sizeof large_body);
    FCGX_Init();
    listen_fd = FCGX_OpenSocket(argv[1], 1024);
    if (listen_fd < 0) {
        perror("FCGX_OpenSocket");
        return 1;
    }
    for (int i = 1; i < count; i++)
        pthread_create(&threads[i], NULL, serve, NULL);
    serve(NULL);
    return 0;
}
