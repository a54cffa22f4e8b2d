"""The smallest smisk application: ``smisk-serve examples.hello:App --bind 127.0.0.1:5000``."""

from smisk.core import Application


class App(Application):
    def service(self):
        self.response.headers = ["Content-Type: text/plain"]
        self.response("Hello World!\n")
