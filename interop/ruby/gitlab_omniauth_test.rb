# GitLab's OpenID Connect strategy, gitlab-omniauth-openid-connect (Debian's
# ruby-omniauth-openid-connect packages exactly that gem), set up with the GitLab guide
# (docs/integrations/gitlab.md): discovery, scope openid profile email, client_auth_method basic,
# uid_field sub, mounted under /users/auth as GitLab mounts it. A Rack application with OmniAuth's middleware stands in for
# GitLab; Rack::Test drives it, and Net::HTTP plays the person's browser between it, the provider
# and the WeCom simulator. The strategy does every protocol step and validation (state, nonce,
# discovery's issuer, the ID token's signature, iss, aud, exp); the test checks the auth hash it
# hands to the application. Run through interop/run.sh, which sets ISSUER, SIMULATOR, ADMIN_TOKEN.
require 'json'
require 'logger'
require 'net/http'
require 'securerandom'
require 'uri'

require 'minitest/autorun'
require 'omniauth_openid_connect'
require 'rack/test'

ISSUER = ENV.fetch('ISSUER')
SIMULATOR = ENV.fetch('SIMULATOR')
ADMIN_TOKEN = ENV.fetch('ADMIN_TOKEN')
GITLAB = 'http://127.0.0.1:5002'
REDIRECT_URI = "#{GITLAB}/users/auth/openid_connect/callback"

# Discovery and the JWKS over loopback http (https in production, the library's default).
SWD.url_builder = URI::HTTP
WebFinger.url_builder = URI::HTTP
OmniAuth.config.logger = Logger.new(nil)
OmniAuth.config.path_prefix = '/users/auth'
# GitLab checks its own CSRF token on the POST that starts a sign-in; this application has none.
OmniAuth.config.request_validation_phase = nil

def register_client
  uri = URI("#{ISSUER}/admin/clients")
  request = Net::HTTP::Post.new(uri, 'Authorization' => "Bearer #{ADMIN_TOKEN}",
                                     'Content-Type' => 'application/json')
  request.body = JSON.generate(client_name: 'interop: GitLab omniauth', redirect_uris: [REDIRECT_URI])
  response = Net::HTTP.start(uri.host, uri.port) { |http| http.request(request) }
  raise "registration failed: #{response.code} #{response.body}" unless response.code == '201'

  JSON.parse(response.body)
end

# The person's browser: cookies per host and port, every redirect followed by hand.
class Browser
  def initialize
    @jar = Hash.new { |h, k| h[k] = {} }
  end

  def get(url)
    uri = URI(url)
    origin = "#{uri.host}:#{uri.port}"
    request = Net::HTTP::Get.new(uri)
    cookies = @jar[origin]
    request['Cookie'] = cookies.map { |k, v| "#{k}=#{v}" }.join('; ') unless cookies.empty?
    response = Net::HTTP.start(uri.host, uri.port) { |http| http.request(request) }
    Array(response.get_fields('set-cookie')).each do |line|
      name, value = line.split(';', 2).first.split('=', 2)
      cookies[name.strip] = value.to_s.strip
    end
    response
  end

  def redirect_from(url)
    response = get(url)
    location = response['location']
    raise "expected a redirect from #{url}, got #{response.code}: #{response.body.to_s[0, 300]}" unless
      response.is_a?(Net::HTTPRedirection) && location

    URI.join(url, location).to_s
  end

  # To the provider, on to WeCom where `member` "scans", back through the provider's callback;
  # returns where the provider finally sends the browser (the application's redirect URI).
  def sign_in(authorization_url, member)
    at_wecom = redirect_from(authorization_url)
    raise "not sent to WeCom web login: #{at_wecom}" unless at_wecom.start_with?("#{SIMULATOR}/wwlogin/sso/login?")

    page = get(at_wecom)
    raise 'the WeCom picker does not show the member' unless page.code == '200' && page.body.include?(member)

    path, query = at_wecom.split('?', 2)
    callback = redirect_from("#{path}/approve?#{query}&userid=#{member}")
    raise "WeCom did not return to the provider: #{callback}" unless callback.start_with?("#{ISSUER}/")

    redirect_from(callback)
  end
end

class GitLabOmniauthTest < Minitest::Test
  include Rack::Test::Methods

  def app
    registered = @registered
    @app ||= Rack::Builder.new do
      use Rack::Session::Cookie, secret: SecureRandom.hex(64), same_site: :lax
      use OmniAuth::Builder do
        # The guide's gitlab_rails['omniauth_providers'] entry, args as GitLab passes them.
        provider :openid_connect,
                 name: 'openid_connect', scope: %w[openid profile email],
                 response_type: 'code', issuer: ISSUER,
                 discovery: true, client_auth_method: 'basic', uid_field: 'sub', pkce: true,
                 client_options: {
                   identifier: registered['client_id'], secret: registered['client_secret'],
                   redirect_uri: REDIRECT_URI
                 }
      end
      run lambda { |env|
        auth = env['omniauth.auth']
        failure = env['omniauth.error'] || env['omniauth.error.type']
        body = auth ? auth.to_hash : { 'failure' => failure.inspect }
        [auth ? 200 : 401, { 'content-type' => 'application/json' }, [JSON.generate(body)]]
      }
    end
  end

  def test_sign_in_as_gitlab_does
    puts(%w[gitlab-omniauth-openid-connect openid_connect rack-oauth2 omniauth].map do |gem|
      "#{gem} #{Gem::Specification.find_by_name(gem).version}"
    rescue Gem::MissingSpecError
      "#{gem} ?"
    end.join(', '))
    @registered = register_client
    browser = Browser.new

    post '/users/auth/openid_connect'
    assert_equal 302, last_response.status, last_response.body
    authorization_url = last_response['Location']
    assert authorization_url.start_with?("#{ISSUER}/authorize?"), authorization_url
    assert_match(/[?&]state=/, authorization_url)
    assert_match(/[?&]nonce=/, authorization_url)

    back = browser.sign_in(authorization_url, 'ZhangSan')
    assert back.start_with?("#{REDIRECT_URI}?"), back
    get back.delete_prefix(GITLAB)
    assert_equal 200, last_response.status, last_response.body
    auth = JSON.parse(last_response.body)

    assert_equal 'openid_connect', auth['provider']
    assert_equal 'zhangsan', auth['uid'], 'uid_field sub'
    assert_equal '张三', auth['info']['name']
    assert_match(/\A[^@]+@[^@]+\z/, auth['info']['email'])
    assert_equal 'ZhangSan', auth['info']['nickname'], 'preferred_username, GitLab\'s username'
    raw = auth['extra']['raw_info']
    assert_equal ISSUER, raw['iss']
    assert_equal @registered['client_id'], raw['aud']
  end
end
