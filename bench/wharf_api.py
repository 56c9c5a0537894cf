"""One keep-alive connection to a Wharf as `admin`, shared by the bench scripts that drive its HTTP API."""
import base64
import http.client
import sys


class Wharf:
    def __init__(self, address, password):
        host, port = address.split(":")
        self.connection = http.client.HTTPConnection(host, int(port))
        self.auth = {"authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}

    def call(self, method, path, body=None, headers=None):
        """The response body of a 200 or 201; any other status ends the script, naming the request."""
        self.connection.request(method, path, body=body, headers={**self.auth, **(headers or {})})
        response = self.connection.getresponse()
        text = response.read()
        if response.status not in (200, 201):
            sys.exit(f"{method} {path}: {response.status} {text[:200]}")
        return text
