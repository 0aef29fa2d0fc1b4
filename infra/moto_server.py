"""moto's server, with DynamoDB requests served one at a time.

DynamoDB transactions are serializable. moto's TransactWriteItems is not isolated: it copies the
tables, applies the writes, and on a failed condition restores the copy, which erases writes
that concurrent requests made in between (lost quota increments, for one). Serialising the
DynamoDB requests gives the emulator DynamoDB's isolation. SQS and S3 stay concurrent, so that
long polls keep working.

    python moto_server.py HOST PORT
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


class SerialDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else concurrently."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        return [body]


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, SerialDynamoDB(app), threaded=True)


if __name__ == "__main__":
    main()
