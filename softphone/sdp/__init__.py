"""softphone.sdp"""
