"""RFC 4475 / RFC 5118 torture messages shared by the parser tests.

Written with ``\\n`` line ends and converted to CRLF by ``sip()``; ``{cl}`` is replaced by the
real body length so that the bodies below need not be counted by hand. Where a test is about
a wrong Content-Length the number is written literally.
"""

from __future__ import annotations

SDP = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.4\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\n"
    b"m=video 3227 RTP/AVP 31\r\n"
    b"a=rtpmap:31 LPC\r\n"
)


def sip(text: str, body: bytes = b"") -> bytes:
    """CRLF line ends, ``{cl}`` -> len(body), UTF-8, then the body."""
    head = text.replace("{cl}", str(len(body))).replace("\n", "\r\n")
    return head.encode("utf-8") + body


WSINV = sip(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\n'
    "  ;\n"
    "  tag = 98asjd8\n"
    "MaX-fOrWaRdS: 0068\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\n"
    "Content-Length   : {cl}\n"
    "cseq: 0009\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.2;branch=390skdjuw\n"
    "s :\n"
    "NewFangledHeader:   newfangled value\n"
    " continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
    "Content-Type: application/sdp\n"
    "Route:\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n"
    "  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n"
    " z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n'
    "      newvalue ;\n"
    "  secondparam ; q = 0.33\n"
    "\n",
    SDP,
)

INTMETH = sip(
    "!interesting-Method0123456789_*+`.%indeed'~ "
    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
    "(doesn't-it)@example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
    'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
    "<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\n"
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;"
    "fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.\n"
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
    "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n"
    "Max-Forwards: 255\n"
    "extensionHeader-!.%*+_`'~: 大停電\n"
    "Content-Length: 0\n"
    "\n"
)

ESC01 = sip(
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n"
    "To: sip:%75se%72@example.com\n"
    "From: <sip:I%20have%20spaces@example.net>;tag=938\n"
    "Max-Forwards: 87\n"
    "i: esc01.239409asdfakjkn23onasd0-3234\n"
    "CSeq: 234234 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\n"
    "C: application/sdp\n"
    "Contact:\n"
    "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\n"
    "Content-Length: {cl}\n"
    "\n",
    SDP,
)

ESCNULL = sip(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:null-%00-null@example.com\n"
    "From: sip:null-%00-null@example.com;tag=839923423\n"
    "Max-Forwards: 70\n"
    "Call-ID: escnull.39203ndfvkjdasfkjn23d\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "Contact: <sip:%00@host5.example.com>\n"
    "Contact: <sip:%00%00@host5.example.com>\n"
    "L:0\n"
    "\n"
)

ESC02 = sip(
    "RE%47IST%45R sip:registrar.example.com SIP/2.0\n"
    'To: "%Z%45" <sip:resource@example.com>\n'
    'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23\n'
    "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\n"
    "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209324923\n"
    "CSeq: 29344 RE%47IST%45R\n"
    "Max-Forwards: 70\n"
    "Contact: <sip:alias1@host1.example.com>\n"
    "C%6Fntact: <sip:alias2@host2.example.com>\n"
    "Contact: <sip:alias3@host3.example.com>\n"
    "l: 0\n"
    "\n"
)

LWSDISP = sip(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: caller<sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID: lwsdisp.1234abcd@funky.example.com\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)

LONG_TAG = "longreq.one" + "really" * 200 + "long"
LONG_VIAS = 46
LONGREQ = sip(
    "INVITE sip:user@example.com SIP/2.0\n"
    f'To: "I have a user name of {"extreme" * 40} proportion" '
    "<sip:user@example.com:6000;unknownparam1=verylonguriparametervalue>\n"
    f"From: sip:caller@example.net;tag={LONG_TAG}\n"
    f"Call-ID: longreq.{'z' * 1000}\n"
    "CSeq: 3882340 INVITE\n"
    f"Unknown-{'Long' * 40}-Name: unknown-{'long' * 40}-value; "
    f"unknown-{'long' * 40}-parameter-name = unknown-{'long' * 40}-parameter-value\n"
    + "".join(f"Via: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{i}\n" for i in range(LONG_VIAS))
    + "Max-Forwards: 70\n"
    "Contact: <sip:amazinglylongcallername@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "l: {cl}\n"
    "\n",
    SDP,
)

DBLREQ = sip(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:j.user@example.com;tag=43251j3j324\n"
    "Max-Forwards: 8\n"
    "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\n"
    "Contact: sip:j.user@host.example.com\n"
    "CSeq: 8 REGISTER\n"
    "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\n"
    "Content-Length: 0\n"
    "\n"
    "INVITE sip:joe@example.com SIP/2.0\n"
    "t: sip:joe@example.com\n"
    "From: sip:caller@example.net;tag=141334\n"
    "Max-Forwards: 8\n"
    "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {cl}\n"
    "\n",
    SDP,
)

SEMIURI = sip(
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "From: sip:caller@example.org;tag=33242\n"
    "Max-Forwards: 3\n"
    "Call-ID: semiuri.0ha0isndaksdj\n"
    "CSeq: 8 OPTIONS\n"
    "Accept: application/sdp, application/pkcs7-mime,\n"
    "        multipart/mixed, multipart/signed,\n"
    "        message/sip, message/sipfrag\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)

TRANSPORTS = sip(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: <sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID:  transports.kijh4akdnaqjkwendsasfdj\n"
    "Accept: application/sdp\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n"
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n"
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n"
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n"
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\n"
    "l: 0\n"
    "\n"
)

PKCS7_BLOB = bytes(range(256)) + b"\x00\x00\r\n--7a9cbec.3d18\r\n\x00-- 7a9cbec.3d19\r\n"
MPART01_BODY = (
    b"--7a9cbec.3d19\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n" + SDP + b"\r\n"
    b"--7a9cbec.3d19\r\n"
    b"Content-Type: application/pkcs7-signature\r\n"
    b"Content-Disposition: signature;handling=required\r\n"
    b"\r\n" + PKCS7_BLOB + b"\r\n"
    b"--7a9cbec.3d19--\r\n"
)
MPART01 = sip(
    "MESSAGE sip:kumiko@example.org SIP/2.0\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\n"
    "Max-Forwards: 70\n"
    "Route: <sip:127.0.0.1:5080>\n"
    "Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gv"
    "YjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=\n"
    "Contact: <sip:fluffy@127.0.0.1:5070>\n"
    "To: <sip:kumiko@example.org>\n"
    "From: <sip:fluffy@example.com>;tag=2fb0dcc9\n"
    "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\n"
    "CSeq: 1 MESSAGE\n"
    "Content-Transfer-Encoding: binary\n"
    "Content-Type: multipart/mixed;boundary=7a9cbec.3d19\n"
    "Date: Thu, 18 Sep 2008 10:14:22 GMT\n"
    "Content-Length: {cl}\n"
    "\n",
    MPART01_BODY,
)

UNREASON = sip(
    "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n"
    "CSeq: 35 INVITE\n"
    "From: sip:user@example.com;tag=11141343\n"
    "To: sip:user@example.edu;tag=2229\n"
    "Content-Length: {cl}\n"
    "Content-Type: application/sdp\n"
    "Contact: <sip:user@host198.example.com>\n"
    "\n",
    SDP,
)

NOREASON = sip(
    "SIP/2.0 100 \n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: noreason.asndj203insdf99223ndf\n"
    "CSeq: 35 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "Contact: <sip:user@host105.example.com>\n"
    "\n"
)

# RFC 4475 §3.3 / §3.4: syntactically valid, application-level problems (not the parser's).
UNKSCM = sip(
    "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=384\n"
    "Max-Forwards: 3\n"
    "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\n"
    "CSeq: 3923423 OPTIONS\n"
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\n"
    "Content-Length: 0\n"
    "\n"
)

ZEROMF = sip(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=3ghsd41\n"
    "Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas\n"
    "CSeq: 39234321 OPTIONS\n"
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i\n"
    "Max-Forwards: 0\n"
    "Content-Length: 0\n"
    "\n"
)

INV2543 = sip(
    "INVITE sip:UserB@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP iftgw.example.com\n"
    "From: <sip:+13035551111@ift.client.example.net;user=phone>\n"
    "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\n"
    "To: sip:+16505552222@ss1.example.net;user=phone\n"
    "Call-ID: inv2543.1717@ift.client.example.com\n"
    "CSeq: 56 INVITE\n"
    "Content-Type: application/sdp\n"
    "\n",
    SDP,
)

# RFC 5118 IPv6 examples that must parse.
IPV6_GOOD = sip(
    "REGISTER sip:[2001:db8::10] SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\n"
    "Call-ID: SSG9559905523997077@hlau_4100\n"
    "Max-Forwards: 70\n"
    'Contact: "Caller" <sip:caller@[2001:db8::1]>\n'
    "CSeq: 98176 REGISTER\n"
    "Content-Length: 0\n"
    "\n"
)

PORT_AMBIGUOUS = IPV6_GOOD.replace(b"sip:[2001:db8::10]", b"sip:[2001:db8::10:5070]")
PORT_UNAMBIGUOUS = IPV6_GOOD.replace(b"sip:[2001:db8::10]", b"sip:[2001:db8::10]:5070")
VIA_RECEIVED_DELIM = IPV6_GOOD.replace(
    b"Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
    b"Via: SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111",
)
VIA_RECEIVED_NODELIM = IPV6_GOOD.replace(
    b"Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
    b"Via: SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3-111",
)
IPV4_MAPPED = IPV6_GOOD.replace(b"sip:[2001:db8::10]", b"sip:[::ffff:192.0.2.10]")
IPV6_CORRECT_ABNF = IPV6_GOOD.replace(b"sip:[2001:db8::10]", b"sip:[2001:db8::192.0.2.1]")
