"""Drive citygrid's /open311/v2/ with two existing PyPI clients, unchanged:

  * `georeport` 0.3.1: reads (service list, definition, request list, single request), in JSON
    and in XML (xmltodict: a dict for one child, a list for many);
  * `open311` 1.1 (Python 2 code, loaded through `open311_shim`): POST with the api_key in the
    query string, `request_id_from_token` on the batch service 06036, and lists.

Environment: OPEN311_ENDPOINT (e.g. http://127.0.0.1:8080/open311/v2), OPEN311_KEY.
Run: python -m unittest -v test_clients   (the tests run in name order: the POSTs first)
"""

import json
import os
import unittest
import urllib.error

import open311_shim

Open311 = open311_shim.load()

import georeport  # noqa: E402  (after the shim: it needs the pure-Python ElementTree first)
import requests  # noqa: E402

ENDPOINT = os.environ.get("OPEN311_ENDPOINT", "http://127.0.0.1:8080/open311/v2")
KEY = os.environ.get("OPEN311_KEY", "demo-open311-key")
JURISDICTION = "xuzhou.gov.cn"
DESCRIPTION = "路口有一堆暴露垃圾（open311 1.1 客户端）"
CONTACT = {"first_name": "Li", "last_name": "Sisi", "email": "li.sisi@example.com", "phone": "13900001111"}

# Filled by the POST tests, read by the later ones.
posted = {}


def as_list(x):
    """xmltodict and xml2dict give a dict for one child and a list for many."""
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def assert_private(test, text):
    for secret in CONTACT.values():
        test.assertNotIn(secret, text, "contact data must never be public")


class T1PostWithOpen311(unittest.TestCase):
    """The python `open311` 1.1 client: POST (api_key in the query), tokens, lists, in XML."""

    def client(self, fmt="xml", key=KEY):
        # jurisdiction '' is sent as `jurisdiction_id=` on every call: empty counts as absent.
        return Open311(endpoint=ENDPOINT, api_key=key, jurisdiction="", format=fmt)

    def test_1_post_realtime_xml(self):
        data = self.client().post_service_request(
            service_code="06010", lat="34.26", long="117.18", description=DESCRIPTION, **CONTACT
        )
        request = data["service_requests"]["request"]
        rid = request["service_request_id"]
        self.assertTrue(rid.isdigit(), rid)
        self.assertTrue(request["service_notice"])
        posted["realtime"] = rid

    def test_2_post_realtime_json(self):
        data = self.client(fmt="json").post_service_request(
            service_code="06010", lat="34.2601", long="117.1801", description="第二处垃圾"
        )
        self.assertIsInstance(data, list)
        self.assertEqual(len(data), 1)
        self.assertIsInstance(data[0]["service_request_id"], str)
        posted["second"] = data[0]["service_request_id"]

    def test_3_post_batch_and_token(self):
        client = self.client()
        data = client.post_service_request(service_code="06036", lat="34.26", long="117.18", description="乱堆杂物")
        request = data["service_requests"]["request"]
        self.assertNotIn("service_request_id", request)
        token = request["token"]
        found = client.request_id_from_token(token)
        self.assertEqual(found["token"], token)
        self.assertTrue(found["service_request_id"].isdigit())
        posted["batch"] = found["service_request_id"]

    def test_4_forged_key_is_refused(self):
        with self.assertRaises(urllib.error.HTTPError) as caught:
            self.client(key="forged").post_service_request(
                service_code="06010", lat="34.26", long="117.18", description="x"
            )
        self.assertEqual(caught.exception.code, 403)
        body = caught.exception.read().decode("utf-8")
        self.assertIn("<errors><error><code>403</code>", body)

    def test_5_outside_the_city_is_refused(self):
        with self.assertRaises(urllib.error.HTTPError) as caught:
            self.client().post_service_request(service_code="06010", lat="34.26", long="117.30", description="x")
        self.assertEqual(caught.exception.code, 400)
        self.assertIn("outside", caught.exception.read().decode("utf-8"))

    def test_6_reads(self):
        client = self.client()
        services = as_list(client.service_list())
        self.assertIn("06010", [s["service_code"] for s in services])
        # The singular service/{code} path this client asks for.
        definition = client.service_definition("01001")["service_definition"]
        self.assertEqual(definition["service_code"], "01001")
        attribute = definition["attributes"]["attribute"]
        self.assertEqual(attribute["code"], "condition")
        self.assertEqual(len(as_list(attribute["values"]["value"])), 3)
        everything = as_list(client.service_requests())
        ids = [r["service_request_id"] for r in everything]
        for rid in (posted["realtime"], posted["second"], posted["batch"]):
            self.assertIn(rid, ids)
        one = client.service_requests(service_request_id=posted["realtime"])
        self.assertIsInstance(one, dict, "one result: xml2dict gives a dict")
        self.assertEqual(one["description"], DESCRIPTION)
        single = client.get_service_request(posted["realtime"])["service_requests"]["request"]
        self.assertEqual(single["service_request_id"], posted["realtime"])
        self.assertEqual(single["status"], "open")
        # xml2dict reads an empty element as None.
        self.assertIsNone(single["zipcode"])


class T2ReadWithGeoReport(unittest.TestCase):
    """`georeport` 0.3.1 reads in JSON and XML."""

    def test_json(self):
        client = georeport.GeoReport(ENDPOINT, jurisdiction=JURISDICTION, output_format="json")
        services = client.get_service_list()
        garbage = [s for s in services if s["service_code"] == "06010"]
        self.assertEqual(len(garbage), 1)
        self.assertEqual(garbage[0]["service_name"], "暴露垃圾")
        self.assertIs(garbage[0]["metadata"], False)
        definition = client.get_service_definition("01001")
        self.assertEqual(definition["attributes"][0]["datatype"], "singlevaluelist")
        everything = client.get_service_requests()
        self.assertGreaterEqual(len(everything), 3)
        self.assertTrue(all(isinstance(r["service_request_id"], str) for r in everything))
        filtered = client.get_service_requests(service_code="06036", status="open")
        self.assertEqual([r["service_request_id"] for r in filtered], [posted["batch"]])
        single = client.get_service_request(posted["realtime"])
        self.assertEqual(single["description"], DESCRIPTION)
        self.assertEqual(single["lat"], 34.26)
        self.assertEqual(single["long"], 117.18)
        self.assertTrue(single["requested_datetime"].endswith("+08:00"))
        none = client.get_service_requests(status="closed")
        self.assertEqual(none, [])

    def test_xml(self):
        client = georeport.GeoReport(ENDPOINT, output_format="xml")
        services = client.get_service_list()
        self.assertIsInstance(services, list)
        self.assertIn("06010", [s["service_code"] for s in services])
        definition = client.get_service_definition("01001")
        self.assertEqual(definition["service_code"], "01001")
        self.assertEqual(definition["attributes"]["attribute"]["required"], "true")
        many = client.get_service_requests()
        self.assertIsInstance(many, list)
        self.assertGreaterEqual(len(many), 3)
        one = client.get_service_requests(service_request_id=posted["second"])
        self.assertIsInstance(one, dict)
        self.assertEqual(one["description"], "第二处垃圾")
        single = client.get_service_request(posted["batch"])
        self.assertEqual(single["service_code"], "06036")
        self.assertEqual(single["status"], "open")

    def test_errors_raise(self):
        client = georeport.GeoReport(ENDPOINT, jurisdiction="sfgov.org")
        with self.assertRaises(requests.HTTPError) as caught:
            client.get_service_list()
        self.assertEqual(caught.exception.response.status_code, 404)
        self.assertEqual(caught.exception.response.json()[0]["code"], 404)
        with self.assertRaises(requests.HTTPError):
            georeport.GeoReport(ENDPOINT).get_service_definition("99999")


class T3Privacy(unittest.TestCase):
    def test_public_reads_hide_contact_data(self):
        for fmt in ("json", "xml"):
            for path in ("requests", "requests/%s" % posted["realtime"]):
                text = requests.get("%s/%s.%s" % (ENDPOINT, path, fmt)).text
                assert_private(self, text)

    def test_discovery(self):
        r = requests.get(ENDPOINT + "/discovery.json")
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertEqual(r.json()["endpoints"][0]["specification"], "http://wiki.open311.org/GeoReport_v2")
        r = requests.get(ENDPOINT + "/discovery.xml")
        self.assertEqual(r.headers["Content-Type"], "text/xml")
        json.dumps(r.text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
